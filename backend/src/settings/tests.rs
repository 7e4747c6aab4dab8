//! Precedence (flag > environment > file > default) with a made-up
//! environment, and which keys each command resolves.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::server::auth::token_hash_line;
use crate::server::IngestAuth;

const TOKEN_A: &str = "token-a-0123456789abcdef";
const TOKEN_B: &str = "token-b-0123456789abcdef";

fn file(toml: &str) -> FileConfig {
    toml::from_str(toml).expect("a valid config file")
}

fn resolve(command: CommandFlags, common: CommonFlags, env: &[(&str, &str)], toml: &str) -> anyhow::Result<Settings> {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::resolve(&Flags { common, command }, &|name| env.get(name).cloned(), &file(toml))
}

fn serve(serve: ServeFlags, env: &[(&str, &str)], toml: &str) -> anyhow::Result<ServeSettings> {
    resolve(CommandFlags::Serve(serve), CommonFlags::default(), env, toml)?.into_server()
}

fn error(result: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", result.expect_err("an error"))
}

#[test]
fn the_data_dir_comes_from_the_flag_then_the_environment_then_the_file_then_the_default() {
    let flag = CommonFlags { data_dir: Some("from-flag".into()), ..CommonFlags::default() };
    let env = [("CLICKSTREAM_DATA_DIR", "from-env")];
    let toml = "data_dir = \"from-file\"";
    let dir = |common: CommonFlags, env: &[(&str, &str)], toml: &str| {
        resolve(CommandFlags::Gold, common, env, toml).unwrap().data_dir
    };
    assert_eq!(dir(flag.clone(), &env, toml), PathBuf::from("from-flag"));
    assert_eq!(dir(CommonFlags::default(), &env, toml), PathBuf::from("from-env"));
    assert_eq!(dir(CommonFlags::default(), &[], toml), PathBuf::from("from-file"));
    assert_eq!(dir(CommonFlags::default(), &[], ""), PathBuf::from("data"));

    // Every part that works on the data directory gets the same one.
    let s = resolve(CommandFlags::Serve(ServeFlags::default()), CommonFlags::default(), &env, toml).unwrap();
    assert_eq!(s.aggregate.data_dir, PathBuf::from("from-env"));
    assert_eq!(s.server.unwrap().data_dir, PathBuf::from("from-env"));
}

#[test]
fn bind_and_port_come_from_the_flag_then_the_environment_then_the_file_then_the_default() {
    let flags = ServeFlags { bind: Some("10.0.0.1".into()), port: Some(1), ..ServeFlags::default() };
    let env = [("CLICKSTREAM_BIND", "10.0.0.2"), ("CLICKSTREAM_PORT", "2")];
    let toml = "bind = \"10.0.0.3\"\nport = 3";
    let s = serve(flags, &env, toml).unwrap();
    assert_eq!((s.bind.as_str(), s.port), ("10.0.0.1", 1));
    let s = serve(ServeFlags::default(), &env, toml).unwrap();
    assert_eq!((s.bind.as_str(), s.port), ("10.0.0.2", 2));
    let s = serve(ServeFlags::default(), &[], toml).unwrap();
    assert_eq!((s.bind.as_str(), s.port), ("10.0.0.3", 3));
    let s = serve(ServeFlags::default(), &[], "").unwrap();
    assert_eq!((s.bind.as_str(), s.port), ("127.0.0.1", 8080));
}

#[test]
fn a_bad_value_in_the_environment_names_the_variable() {
    let err = error(serve(ServeFlags::default(), &[("CLICKSTREAM_PORT", "http")], ""));
    assert!(err.contains("CLICKSTREAM_PORT") && err.contains("\"http\""), "{err}");
    let err = error(resolve(
        CommandFlags::Aggregate { partitions: None },
        CommonFlags::default(),
        &[("CLICKSTREAM_STREAM", "kafka")],
        "",
    ));
    assert_eq!(err, "CLICKSTREAM_STREAM must be \"embedded\" or \"fluvio\", got \"kafka\"");
    let err =
        error(resolve(CommandFlags::Aggregate { partitions: None }, CommonFlags::default(), &[], "stream = \"kafka\""));
    assert_eq!(err, "stream must be \"embedded\" or \"fluvio\", got \"kafka\"");
}

#[test]
fn the_stream_is_the_flag_then_the_environment_then_the_file_else_embedded() {
    let fluvio = |common: CommonFlags, env: &[(&str, &str)], toml: &str| {
        resolve(CommandFlags::Aggregate { partitions: None }, common, env, toml).unwrap().fluvio.map(|f| f.sc_addr)
    };
    let flag = |kind: &str| CommonFlags { stream: Some(kind.into()), ..CommonFlags::default() };
    assert_eq!(fluvio(CommonFlags::default(), &[], ""), None);
    assert_eq!(fluvio(CommonFlags::default(), &[], "stream = \"fluvio\""), Some("127.0.0.1:9003".into()));
    assert_eq!(fluvio(CommonFlags::default(), &[("CLICKSTREAM_STREAM", "embedded")], "stream = \"fluvio\""), None);
    assert_eq!(fluvio(flag("fluvio"), &[("CLICKSTREAM_STREAM", "embedded")], ""), Some("127.0.0.1:9003".into()));
    assert_eq!(fluvio(flag("embedded"), &[("CLICKSTREAM_FLUVIO_SC", "sc:9003")], "stream = \"fluvio\""), None);

    // An SC address alone (flag or environment, not the file's) means Fluvio.
    assert_eq!(fluvio(CommonFlags::default(), &[("CLICKSTREAM_FLUVIO_SC", "sc:9003")], ""), Some("sc:9003".into()));
    let sc = CommonFlags { fluvio_sc: Some("flag:9003".into()), ..CommonFlags::default() };
    assert_eq!(fluvio(sc, &[("CLICKSTREAM_FLUVIO_SC", "env:9003")], ""), Some("flag:9003".into()));
    assert_eq!(fluvio(CommonFlags::default(), &[], "[fluvio]\nsc = \"file:9003\""), None);
    assert_eq!(fluvio(flag("fluvio"), &[], "[fluvio]\nsc = \"file:9003\""), Some("file:9003".into()));

    let s = resolve(
        CommandFlags::Aggregate { partitions: None },
        flag("fluvio"),
        &[],
        "partitions = 6\n[fluvio]\nreplication = 2",
    )
    .unwrap();
    let f = s.fluvio.unwrap();
    assert_eq!((s.partitions, f.partitions, f.replication), (6, 6, 2));
}

#[test]
fn token_lists_join_the_file_and_the_environment() {
    let toml = format!("api_tokens = [\"{}\"]\nmetrics_tokens = [\"{TOKEN_B}\"]", token_hash_line(TOKEN_A));
    let env = [("CLICKSTREAM_API_TOKENS", &*format!(" {TOKEN_B} ,,")), ("CLICKSTREAM_METRICS_TOKENS", "")];
    let s = serve(ServeFlags::default(), &env, &toml).unwrap();
    let hash = |t: &str| crate::server::auth::parse_token(t).unwrap();
    assert_eq!(s.api_tokens, vec![hash(TOKEN_A), hash(TOKEN_B)]);
    assert_eq!(s.metrics_tokens, vec![hash(TOKEN_B)]);
    assert!(serve(ServeFlags::default(), &[], "").unwrap().api_tokens.is_empty());

    let err = error(serve(ServeFlags::default(), &[("CLICKSTREAM_API_TOKENS", "short")], ""));
    assert!(err.starts_with("api_tokens (or CLICKSTREAM_API_TOKENS): a token must be at least 16 characters"), "{err}");
}

#[test]
fn timeouts_and_limits_come_from_the_file_else_their_components_defaults() {
    let s = serve(ServeFlags::default(), &[], "").unwrap();
    let defaults = ServeSettings::new("data");
    assert_eq!(s.guard.ack_timeout, defaults.guard.ack_timeout);
    assert_eq!(s.guard.body_timeout, defaults.guard.body_timeout);
    assert_eq!(s.connections.header_timeout, defaults.connections.header_timeout);
    assert_eq!(s.limits.max_body_bytes, defaults.limits.max_body_bytes);

    let toml = "ack_timeout_ms = 0\nbody_timeout_ms = 1500\nheader_timeout_ms = 2500\nmax_connections = 7\n\
                max_body_bytes = 1000\nmax_events_per_batch = 9\nhorizon_hours = 2\nrate_limit_per_minute = 0";
    let s = serve(ServeFlags::default(), &[], toml).unwrap();
    assert_eq!(s.guard.ack_timeout, Duration::from_millis(1), "never zero");
    assert_eq!(s.guard.body_timeout, Duration::from_millis(1500));
    assert_eq!(s.connections.header_timeout, Duration::from_millis(2500));
    assert_eq!(s.connections.max_connections, 7);
    assert_eq!((s.limits.max_body_bytes, s.limits.max_events, s.limits.horizon_ms), (1000, 9, 7_200_000));
    assert_eq!(s.guard.per_client_per_minute, 0);
    let flag = ServeFlags { max_body_bytes: Some(2000), ..ServeFlags::default() };
    assert_eq!(serve(flag, &[], toml).unwrap().limits.max_body_bytes, 2000);

    let s = resolve(
        CommandFlags::Gold,
        CommonFlags::default(),
        &[],
        "[aggregate]\npoll_interval_ms = 250\nsession_gap_minutes = 5",
    )
    .unwrap();
    assert_eq!(s.aggregate.poll_interval, Duration::from_millis(250));
    assert_eq!(s.aggregate.gold.unwrap().session_gap_ms, 300_000);
}

#[test]
fn maintenance_runs_every_so_many_minutes_or_seconds() {
    let every = |toml: &str| {
        resolve(CommandFlags::Gold, CommonFlags::default(), &[], toml).unwrap().aggregate.maintenance_every
    };
    assert_eq!(every(""), Some(Duration::from_secs(600)));
    assert_eq!(every("[aggregate]\nmaintenance_every_minutes = 2"), Some(Duration::from_secs(120)));
    assert_eq!(every("[aggregate]\nmaintenance_every_minutes = 0"), None);
    let both = "[aggregate]\nmaintenance_every_minutes = 2\nmaintenance_every_seconds = 5";
    assert_eq!(every(both), Some(Duration::from_secs(5)));
}

#[test]
fn the_ingest_secret_is_the_flag_then_the_environment_then_the_file_plus_the_previous_ones() {
    let secrets =
        |flags: ServeFlags, env: &[(&str, &str)], toml: &str| match serve(flags, env, toml).unwrap().ingest_auth {
            IngestAuth::Signed(s) => s.into_iter().map(|r| String::from_utf8(r.0).unwrap()).collect::<Vec<_>>(),
            IngestAuth::Unsigned => vec!["<unsigned>".into()],
            IngestAuth::Disabled => vec![],
        };
    let toml = "ingest_secret = \"file\"\ningest_secrets = [\"older\"]";
    let flag = ServeFlags { ingest_secret: Some("flag".into()), ..ServeFlags::default() };
    let env = [("CLICKSTREAM_INGEST_SECRET", "env"), ("CLICKSTREAM_INGEST_SECRET_PREVIOUS", "previous")];
    assert_eq!(secrets(flag, &env, toml), ["flag", "older", "previous"]);
    assert_eq!(secrets(ServeFlags::default(), &env, toml), ["env", "older", "previous"]);
    assert_eq!(secrets(ServeFlags::default(), &[], toml), ["file", "older"]);
    assert!(secrets(ServeFlags::default(), &[], "").is_empty());
    assert_eq!(secrets(ServeFlags::default(), &[], "allow_unsigned_ingest = true"), ["<unsigned>"]);
}

#[test]
fn an_empty_ip_salt_secret_in_the_environment_switches_the_files_off() {
    let salt = |env: &[(&str, &str)]| {
        serve(ServeFlags::default(), env, "ip_salt_secret = \"file\"").unwrap().ip_salt_secret.map(|r| r.0)
    };
    assert_eq!(salt(&[]), Some(b"file".to_vec()));
    assert_eq!(salt(&[("CLICKSTREAM_IP_SALT_SECRET", "env")]), Some(b"env".to_vec()));
    assert_eq!(salt(&[("CLICKSTREAM_IP_SALT_SECRET", "")]), None);
}

#[test]
fn the_demo_is_open_and_reads_only_the_port_of_the_servers_variables() {
    let env = [("CLICKSTREAM_BIND", "0.0.0.0"), ("CLICKSTREAM_PORT", "9999"), ("CLICKSTREAM_INGEST_SECRET", "env")];
    let demo = |port: Option<u16>| {
        resolve(CommandFlags::Demo { port }, CommonFlags::default(), &env, "").unwrap().into_server().unwrap()
    };
    let s = demo(None);
    assert_eq!((s.bind.as_str(), s.port), ("127.0.0.1", 9999));
    assert!(matches!(s.ingest_auth, IngestAuth::Disabled));
    assert!(s.open_access);
    assert_eq!((s.guard.per_client_per_minute, s.guard.per_site_events_per_minute), (0, 0));
    assert!(s.aggregate.is_some());
    assert_eq!(demo(Some(0)).port, 0);
}

#[test]
fn each_command_resolves_only_the_keys_it_uses() {
    let toml = "currency = \"euro\"\nstream = \"fluvio\"\n[fluvio]\ncompression = \"brotli\"";
    assert_eq!(
        error(serve(ServeFlags::default(), &[], "currency = \"euro\"")),
        "currency must be an ISO 4217 code like \"EUR\", got \"euro\""
    );
    let err = error(resolve(CommandFlags::Aggregate { partitions: None }, CommonFlags::default(), &[], toml));
    assert!(err.starts_with("fluvio compression must be"), "{err}");
    for command in [CommandFlags::Gold, CommandFlags::Replay, CommandFlags::Compact] {
        let s = resolve(command, CommonFlags::default(), &[], toml).unwrap();
        assert!(s.server.is_none() && s.fluvio.is_none());
    }
    let s = resolve(CommandFlags::Aggregate { partitions: Some(vec![0, 2]) }, CommonFlags::default(), &[], "").unwrap();
    assert_eq!(s.aggregate.partitions, Some(vec![0, 2]));
    assert!(s.into_server().is_err());
    let no_aggregate = ServeFlags { no_aggregate: true, ..ServeFlags::default() };
    assert!(serve(no_aggregate, &[], "").unwrap().aggregate.is_none());
}

#[test]
fn the_config_file_is_the_flag_else_the_environment() {
    let dir = std::env::temp_dir().join(format!("clickstream-settings-{}", std::process::id()));
    crate::fixtures::fresh_dir(&dir).unwrap();
    let (a, b) = (dir.join("a.toml"), dir.join("b.toml"));
    std::fs::write(&a, "port = 1").unwrap();
    std::fs::write(&b, "port = 2").unwrap();
    let env: HashMap<&str, String> = HashMap::from([("CLICKSTREAM_CONFIG", b.display().to_string())]);
    let env = |name: &str| env.get(name).cloned();
    let load = |config: Option<PathBuf>| {
        let flags = Flags {
            common: CommonFlags { config, ..CommonFlags::default() },
            command: CommandFlags::Serve(ServeFlags::default()),
        };
        Settings::load(&flags, &env).unwrap().into_server().unwrap().port
    };
    assert_eq!(load(Some(a)), 1);
    assert_eq!(load(None), 2);
    let err = error(Settings::load(
        &Flags {
            common: CommonFlags { config: Some(dir.join("missing.toml")), ..CommonFlags::default() },
            command: CommandFlags::Gold,
        },
        &env,
    ));
    assert!(err.starts_with("cannot read config file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn goals_come_from_the_file_and_the_demo_has_the_shops() {
    let goals = |command: CommandFlags, toml: &str| -> anyhow::Result<Vec<String>> {
        let settings = resolve(command, CommonFlags::default(), &[], toml)?;
        Ok(settings.aggregate.gold.map(|g| g.goals.goals.iter().map(|g| g.name.clone()).collect()).unwrap_or_default())
    };
    let one = "[[goals]]\nname = \"Signup\"\nevent = \"signup\"\n";
    assert_eq!(goals(CommandFlags::Gold, one).unwrap(), ["Signup"]);
    assert_eq!(goals(CommandFlags::Demo { port: None }, one).unwrap(), ["Signup"], "the file's, not the shop's");
    let shop = goals(CommandFlags::Demo { port: None }, "").unwrap();
    assert!(shop.len() >= 3, "{shop:?}");
    assert!(goals(CommandFlags::Gold, "").unwrap().is_empty());
    let err = error(goals(CommandFlags::Gold, "[[goals]]\nname = \"Both\"\npage = \"/a\"\nevent = \"b\"\n"));
    assert!(err.contains("goal \"Both\" needs exactly one of page, event or min_revenue"), "{err}");
}

#[test]
fn time_zones_are_iana_names_checked_at_start() {
    let s = serve(
        ServeFlags::default(),
        &[],
        "time_zone = \"Europe/Berlin\"\n[site_time_zones]\n\"shop-ny\" = \"America/New_York\"\n",
    )
    .unwrap();
    assert_eq!(s.zones.of(Some("shop-ny")).name(), "America/New_York");
    assert_eq!(s.zones.of(Some("other")).name(), "Europe/Berlin");
    let err = error(serve(ServeFlags::default(), &[], "[site_time_zones]\n\"shop-ny\" = \"New York\"\n"));
    assert!(err.contains("site_time_zones.shop-ny: unknown time zone 'New York'"), "{err}");
}
