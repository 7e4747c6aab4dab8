//! The client session: one id while the visitor stays active, a new one
//! after the inactivity timeout. It is stored, so it spans page loads and
//! tabs; the backend computes its own sessions on event time as well.

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub id: String,
    /// Client time of the last event in this session, ms.
    pub last_activity: i64,
}

impl Session {
    /// The session an event at `now` belongs to: `current` when it saw
    /// activity within `timeout_ms`, otherwise a new one.
    pub fn touch(current: Option<Session>, now: i64, timeout_ms: i64, new_id: impl FnOnce() -> String) -> Session {
        match current {
            // A clock that stepped back keeps the session: it is the same visit.
            Some(s) if now - s.last_activity <= timeout_ms => {
                Session { last_activity: s.last_activity.max(now), id: s.id }
            }
            _ => Session { id: new_id(), last_activity: now },
        }
    }

    /// `id|last_activity`, the stored form.
    pub fn encode(&self) -> String {
        let mut out = self.id.clone();
        out.push('|');
        crate::json::int(&mut out, self.last_activity);
        out
    }

    pub fn decode(stored: &str) -> Option<Session> {
        let at = stored.bytes().rposition(|b| b == b'|')?;
        let (id, last) = (&stored[..at], &stored[at + 1..]);
        // Digits by hand: `str::parse` brings in code the size budget cannot afford.
        let mut last_activity: i64 = 0;
        for b in last.bytes() {
            if !b.is_ascii_digit() || last_activity > i64::MAX / 10 - 10 {
                return None;
            }
            last_activity = last_activity * 10 + i64::from(b - b'0');
        }
        (!id.is_empty() && !last.is_empty()).then(|| Session { id: id.to_string(), last_activity })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    crate::both! {
        fn a_session_lasts_while_the_visitor_is_active() {
            let s = Session::touch(None, 0, 30 * MIN, || "s1".into());
            let s = Session::touch(Some(s), 29 * MIN, 30 * MIN, || "s2".into());
            // Measured from the last event, not from the start.
            let s = Session::touch(Some(s), 58 * MIN, 30 * MIN, || "s3".into());
            assert_eq!(s, Session { id: "s1".into(), last_activity: 58 * MIN });
        }

        fn thirty_minutes_of_inactivity_start_a_new_session() {
            let s = Session { id: "s1".into(), last_activity: 0 };
            assert_eq!(Session::touch(Some(s.clone()), 30 * MIN, 30 * MIN, || "s2".into()).id, "s1");
            assert_eq!(Session::touch(Some(s), 30 * MIN + 1, 30 * MIN, || "s2".into()).id, "s2");
        }

        fn a_clock_stepping_back_keeps_the_session_and_its_last_activity() {
            let s = Session { id: "s1".into(), last_activity: 10 * MIN };
            assert_eq!(Session::touch(Some(s), 5 * MIN, 30 * MIN, || "s2".into()), Session { id: "s1".into(), last_activity: 10 * MIN });
        }

        fn the_stored_form_round_trips_and_garbage_is_ignored() {
            let s = Session { id: "3f2a-b|c".into(), last_activity: 1_732_262_400_000 };
            assert_eq!(Session::decode(&s.encode()), Some(s));
            assert_eq!(Session::decode("no-separator"), None);
            assert_eq!(Session::decode("id|not-a-number"), None);
            assert_eq!(Session::decode("|5"), None);
        }
    }
}
