//! Consent: what the visitor allowed, and what the tracker may therefore
//! collect and store.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsentMode {
    /// Collect until the visitor says no (`consent(false)`).
    OptOut,
    /// Collect and store nothing until the visitor says yes (`consent(true)`).
    OptIn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    Unknown,
    Granted,
    Denied,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consent {
    pub mode: ConsentMode,
    pub choice: Choice,
    /// The browser says Do-Not-Track or Global Privacy Control, and the
    /// site chose to honour it.
    pub privacy_signal: bool,
}

impl Consent {
    /// May events be collected (and sent)? An explicit yes wins over the
    /// browser signal: the visitor asked for it on this very site.
    pub fn allows_collection(&self) -> bool {
        match self.choice {
            Choice::Granted => true,
            Choice::Denied => false,
            Choice::Unknown => self.mode == ConsentMode::OptOut && !self.privacy_signal,
        }
    }

    /// The stored form of a choice, if it is to be stored: a yes always; a
    /// no only in opt-out mode, where forgetting it would resume collection
    /// on the next page (in opt-in mode no is the default: nothing to store).
    pub fn stored_choice(&self) -> Option<&'static str> {
        match (self.choice, self.mode) {
            (Choice::Granted, _) => Some("granted"),
            (Choice::Denied, ConsentMode::OptOut) => Some("denied"),
            _ => None,
        }
    }

    pub fn parse_stored(stored: Option<&str>) -> Choice {
        match stored {
            Some("granted") => Choice::Granted,
            Some("denied") => Choice::Denied,
            _ => Choice::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(mode: ConsentMode, choice: Choice, privacy_signal: bool) -> Consent {
        Consent { mode, choice, privacy_signal }
    }

    crate::both! {
        fn opt_in_collects_nothing_before_a_yes() {
            assert!(!consent(ConsentMode::OptIn, Choice::Unknown, false).allows_collection());
            assert!(consent(ConsentMode::OptIn, Choice::Granted, false).allows_collection());
            assert!(!consent(ConsentMode::OptIn, Choice::Denied, false).allows_collection());
        }

        fn opt_out_collects_until_a_no() {
            assert!(consent(ConsentMode::OptOut, Choice::Unknown, false).allows_collection());
            assert!(!consent(ConsentMode::OptOut, Choice::Denied, false).allows_collection());
        }

        fn an_honoured_browser_signal_counts_as_no_unless_the_visitor_said_yes() {
            assert!(!consent(ConsentMode::OptOut, Choice::Unknown, true).allows_collection());
            assert!(consent(ConsentMode::OptOut, Choice::Granted, true).allows_collection());
        }

        fn only_choices_that_must_be_remembered_are_stored() {
            assert_eq!(consent(ConsentMode::OptIn, Choice::Denied, false).stored_choice(), None);
            assert_eq!(consent(ConsentMode::OptIn, Choice::Unknown, false).stored_choice(), None);
            assert_eq!(consent(ConsentMode::OptOut, Choice::Denied, false).stored_choice(), Some("denied"));
            let yes = consent(ConsentMode::OptIn, Choice::Granted, false);
            assert_eq!(Consent::parse_stored(yes.stored_choice()), Choice::Granted);
            assert_eq!(Consent::parse_stored(Some("maybe")), Choice::Unknown);
        }
    }
}
