//! Build progress: per-layer bars on a terminal (a pty made by `script`),
//! nothing on a pipe, and nothing extra with --json; the library's events
//! for each built layer.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use common::Env;

/// A copy of the example project whose app layer holds 64 MiB of random
/// bytes, so compressing it takes long enough to be drawn.
fn big_project(env: &Env) -> std::path::PathBuf {
    let p = common::example_project(env);
    let mut data = vec![0u8; 64 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(p.join("layers/app/src/big.bin"), data).unwrap();
    p
}

/// Runs strata under a pty (script(1), from Debian's essential bsdutils);
/// returns everything it drew.
fn on_a_terminal(env: &Env, args: &str) -> String {
    let ts = env.path("typescript");
    let cmd = format!("{} {args}", env!("CARGO_BIN_EXE_strata"));
    let out = Command::new("script")
        .args(["-qefc", &cmd])
        .arg(&ts)
        .env("STRATA_STORE", env.store())
        .env("DOCKER_CONFIG", env.path("docker-config"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&std::fs::read(&ts).unwrap()).into_owned()
}

#[test]
fn a_terminal_gets_per_layer_bars_and_a_pipe_or_json_gets_none() {
    let env = Env::new();
    let p = big_project(&env);
    let p = p.to_str().unwrap();
    let drawn = on_a_terminal(&env, &format!("build -C {p} runtime"));
    assert!(drawn.contains("compressing"), "{drawn}");
    // The big layer's bar counts its bytes (in MiB, as it is written).
    assert!(drawn.contains("MiB") && drawn.contains("app"), "{drawn}");
    // The report still follows.
    assert!(drawn.contains("cache hit rate"), "{drawn}");

    // No terminal: no bars.
    std::fs::write(
        std::path::Path::new(p).join("layers/app/src/big2.bin"),
        "changed",
    )
    .unwrap();
    let out = env.strata(&["build", "-C", p, "runtime"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("compressing") && !err.contains('\u{1b}'),
        "{err}"
    );

    // --json on a terminal: nothing drawn.
    std::fs::write(
        std::path::Path::new(p).join("layers/app/src/big2.bin"),
        "changed again",
    )
    .unwrap();
    let drawn = on_a_terminal(&env, &format!("build -C {p} runtime --json"));
    assert!(!drawn.contains("compressing"), "{drawn}");
    assert!(drawn.contains("\"cache_hit_rate\""), "{drawn}");
}

#[test]
fn each_built_layer_reports_its_phase_bytes_and_end() {
    let env = Env::new();
    let p = big_project(&env);
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&log);
    let store = strata::store::Store::open_or_create(env.store()).unwrap();
    let mut ctx = strata::transport::Context::new(store);
    ctx.layer_progress = Some(Arc::new(move |e: &strata::progress::Event<'_>| {
        use strata::progress::Event;
        let line = match *e {
            Event::Phase { layer, phase, .. } => format!("{layer} phase {phase}"),
            Event::Bytes { layer, done } => format!("{layer} bytes {done}"),
            Event::Done { layer } => format!("{layer} done"),
        };
        seen.lock().unwrap().push(line);
    }));
    let project = strata::compose::project::Project::load(&p).unwrap();
    let sel = strata::compose::build::Selection {
        images: vec!["runtime".into()],
        ..Default::default()
    };
    strata::compose::build::build(&project, &ctx, &sel).unwrap();
    let events = log.lock().unwrap().clone();
    for (layer, phase) in [
        ("base", "compressing"),
        ("greet", "compressing"),
        ("licenses", "importing"),
        ("app", "compressing"),
    ] {
        let of: Vec<&String> = events
            .iter()
            .filter(|e| e.starts_with(&format!("{layer} ")))
            .collect();
        assert_eq!(
            of.first().map(|s| s.as_str()),
            Some(&*format!("{layer} phase {phase}")),
            "{events:?}"
        );
        assert_eq!(
            of.last().map(|s| s.as_str()),
            Some(&*format!("{layer} done")),
            "{events:?}"
        );
    }
    // The app's compressed bytes, growing to about its 64 MiB.
    let bytes: Vec<u64> = events
        .iter()
        .filter_map(|e| e.strip_prefix("app bytes "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] < w[1]), "{bytes:?}");
    assert!(*bytes.last().unwrap() > 60 << 20, "{bytes:?}");

    // A second build builds nothing: no layer enters a phase.
    strata::compose::build::build(&project, &ctx, &sel).unwrap();
    let again = log.lock().unwrap()[events.len()..].to_vec();
    assert!(!again.iter().any(|e| e.contains(" phase ")), "{again:?}");
}
