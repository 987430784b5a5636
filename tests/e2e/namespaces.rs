//! PM2's namespaces: a target that names a namespace acts on all its apps,
//! an app's name comes first, and the namespace shows in list and describe.

use crate::harness::*;
use rsup_proto::app::Status;

#[test]
fn a_namespace_target_acts_on_all_its_apps_and_only_them() {
    let r = Rsup::new();
    for name in ["mailer", "billing"] {
        assert_success(&r.start_fixture("app.js", name, &["--namespace", "jobs"], &[]));
    }
    assert_success(&r.start_fixture("app.js", "api", &[], &[]));
    // In a file too.
    let config = r.path("web.config.js");
    std::fs::write(
        &config,
        format!(
            "module.exports = {{ apps: [{{ name: 'front', script: {:?}, namespace: 'web' }}] }};",
            fixture("app.js")
        ),
    )
    .unwrap();
    r.ok(&["start", config.to_str().unwrap()]);

    let ns = |name: &str| r.process(name).spec.namespace;
    assert_eq!(ns("mailer"), "jobs");
    assert_eq!(ns("api"), "default");
    assert_eq!(ns("front"), "web");

    r.ok(&["stop", "jobs"]);
    for name in ["mailer", "billing"] {
        assert_eq!(r.process(name).status, Status::Stopped);
    }
    assert_eq!(r.process("api").status, Status::Online);
    assert_eq!(r.process("front").status, Status::Online);

    // `start <namespace>` starts them again, as PM2's does.
    r.ok(&["start", "jobs"]);
    assert_eq!(r.process("billing").status, Status::Online);
    r.ok(&["restart", "default"]);
    assert_eq!(r.process("api").restarts, 1);
    assert_eq!(r.process("mailer").restarts, 0);
    assert_eq!(r.process("front").restarts, 0);

    let table = r.ok(&["list"]);
    assert!(table.contains("namespace"), "{table}");
    let row = table.lines().find(|l| l.contains("front")).unwrap();
    assert!(row.contains("│ web "), "{row}");
    let shown = r.ok(&["describe", "jobs"]);
    assert_eq!(shown.matches("Describing process").count(), 2, "{shown}");
    assert!(shown.contains("│ jobs "), "{shown}");

    r.ok(&["delete", "jobs"]);
    let left: Vec<String> = r.jlist().into_iter().map(|p| p.name).collect();
    assert_eq!(left, ["api", "front"]);
    let out = r.run(&["stop", "jobs"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("namespace not found: jobs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_apps_name_comes_before_a_namespace_of_that_name() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "worker", &["--namespace", "queue"], &[]));
    assert_success(&r.start_fixture("app.js", "queue", &[], &[]));
    r.ok(&["stop", "queue"]);
    assert_eq!(r.process("queue").status, Status::Stopped);
    assert_eq!(r.process("worker").status, Status::Online);
    // scale takes an app's name, never a namespace.
    let out = r.run(&["scale", "default", "2"]);
    assert!(!out.status.success());
}

#[test]
fn a_bad_namespace_is_refused_naming_the_flag() {
    let r = Rsup::new();
    let out = r.start_fixture("app.js", "x", &["--namespace", "all"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--namespace: \"all\" is the target for every app"),
        "{err}"
    );
    assert!(r.jlist().is_empty());
}
