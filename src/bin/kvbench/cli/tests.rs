//! The flags' rules, checked without running anything.

use super::*;
use clap::CommandFactory;

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn server_args_take_hyphen_values() {
    let cli = Cli::parse_from([
        "kvbench",
        "compare",
        "--server-arg",
        "--work-us",
        "--server-arg=5",
        "--workload",
        "uniform,pipelined",
    ]);
    let Command::Compare(args) = cli.command else {
        panic!("not compare")
    };
    assert_eq!(args.servers.server_args, ["--work-us", "5"]);
    assert_eq!(
        args.workloads,
        [CompareWorkload::Uniform, CompareWorkload::Pipelined]
    );
}

#[test]
fn sweep_loads_and_work_parse_or_say_what_is_accepted() {
    let cli = Cli::parse_from([
        "kvbench",
        "sweep",
        "--work",
        "block:exp:100us",
        "--loads",
        "10,50%,95",
    ]);
    let Command::Sweep(args) = cli.command else {
        panic!("not sweep")
    };
    assert_eq!(args.loads, [10.0, 50.0, 95.0]);
    assert_eq!(args.work.unwrap().to_string(), "block:exp:100us");
    assert_eq!(args.connections, 64);
    let refused = |argv: &[&str]| {
        let mut all = vec!["kvbench", "sweep"];
        all.extend_from_slice(argv);
        Cli::try_parse_from(all).unwrap_err()
    };
    let err = refused(&["--work", "block:exp:100"]);
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--work"), "{err}");
    assert!(err.to_string().contains("spin or block"), "{err}");
    let err = refused(&["--work", "spin:fixed:5us", "--loads", "10,x"]);
    assert!(err.to_string().contains("--loads"), "{err}");
    assert!(err.to_string().contains("percentage of capacity"), "{err}");
    assert_eq!(
        refused(&["--work", "spin:fixed:5us", "--loads", "0"]).exit_code(),
        2
    );
    // No work model and no server to read one from.
    assert_eq!(refused(&["--loads", "10"]).exit_code(), 2);
    assert_eq!(
        refused(&["--work", "spin:fixed:5us", "--loads", "10", "--rates", "5"]).exit_code(),
        2
    );
}

#[test]
fn top_defaults_and_bounds() {
    let top = |extra: &[&str]| {
        let mut argv = vec!["kvbench", "top"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Top(top) => top,
            _ => unreachable!(),
        })
    };
    let args = top(&[]).unwrap();
    assert_eq!(args.server, "127.0.0.1:11211");
    assert_eq!((args.interval, args.plain, args.count), (1.0, false, None));
    let args = top(&["--interval", "0.1", "--plain", "--count", "3"]).unwrap();
    assert_eq!(
        (args.interval, args.plain, args.count),
        (0.1, true, Some(3))
    );
    for bad in [
        ["--interval", "0"],
        ["--interval", "0.01"],
        ["--count", "0"],
    ] {
        assert_eq!(top(&bad).unwrap_err().exit_code(), 2, "{bad:?}");
    }
}

#[test]
fn tls_needs_a_trust_flag_and_the_trust_flags_need_tls() {
    let parse = |argv: &[&str]| {
        let cli = Cli::try_parse_from(argv)?;
        cli.check().map(|()| cli)
    };
    let refused = |argv: &[&str], flag: &str| {
        let err = parse(argv)
            .err()
            .unwrap_or_else(|| panic!("{argv:?} accepted"));
        assert_eq!(err.exit_code(), 2, "{argv:?}");
        assert!(err.to_string().contains(flag), "{argv:?}: {err}");
    };
    for command in ["run", "top"] {
        refused(&["kvbench", command, "--tls"], "--tls-ca");
        refused(&["kvbench", command, "--tls"], "--tls-insecure");
        refused(&["kvbench", command, "--tls-ca", "ca.pem"], "--tls");
        refused(&["kvbench", command, "--tls-insecure"], "--tls");
        refused(
            &[
                "kvbench",
                command,
                "--tls",
                "--tls-insecure",
                "--tls-ca",
                "x",
            ],
            "--tls-ca",
        );
        refused(&["kvbench", command, "--auth", "nopassword"], "--auth");
    }
    refused(&["kvbench", "run", "--tls-resume"], "--tls");
    let Command::Run(run) = parse(&[
        "kvbench", "run", "--tls", "--tls-ca", "ca.pem", "--auth", "u:p",
    ])
    .unwrap()
    .command
    else {
        panic!("not run")
    };
    assert!(matches!(run.security.trust(), Some(Trust::CaFile(p)) if p.as_os_str() == "ca.pem"));
    assert!(run.security.auth.is_some());
    // compare's servers have kvbench's own certificate: --tls alone.
    assert!(parse(&["kvbench", "compare", "--tls", "--auth", "u:p"]).is_ok());
    refused(&["kvbench", "compare", "--tls-insecure"], "--tls-insecure");
    // sweep: as compare when it starts the servers, as run with --server.
    assert!(parse(&["kvbench", "sweep", "--work", "spin:fixed:5us", "--tls"]).is_ok());
    refused(
        &["kvbench", "sweep", "--server", "127.0.0.1:1", "--tls"],
        "--tls-insecure",
    );
    refused(
        &[
            "kvbench",
            "sweep",
            "--work",
            "spin:fixed:5us",
            "--tls",
            "--tls-insecure",
        ],
        "--server",
    );
    assert!(parse(&[
        "kvbench",
        "sweep",
        "--server",
        "127.0.0.1:1",
        "--tls",
        "--tls-insecure"
    ])
    .is_ok());
}

#[test]
fn warmup_flag_forms() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["kvbench", "run"];
        argv.extend_from_slice(extra);
        match Cli::parse_from(argv).command {
            Command::Run(run) => (run.workload.warmup, run.workload.no_warmup),
            _ => unreachable!(),
        }
    };
    assert_eq!(parse(&[]), (None, false));
    assert_eq!(parse(&["--warmup"]), (Some(true), false));
    assert_eq!(parse(&["--warmup=false"]), (Some(false), false));
    assert_eq!(parse(&["--no-warmup"]), (None, true));
}
