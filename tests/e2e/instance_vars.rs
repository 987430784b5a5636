//! The variables that differ by instance: `instance_var` (PM2's
//! `NODE_APP_INSTANCE`, renamed with `--instance-var`) and `increment_var`,
//! across scale up and down, in fork and cluster mode.

use crate::harness::*;

/// `(instance, port)` of each process that started, in order.
fn started(r: &Rsup) -> Vec<(String, String)> {
    r.report("report")
        .iter()
        .filter(|l| l.starts_with("start"))
        .map(|l| {
            let field = |key: &str| {
                l.split(' ')
                    .find_map(|w| w.strip_prefix(key))
                    .unwrap()
                    .to_string()
            };
            (field("instance="), field("port="))
        })
        .collect()
}

/// Waits until `n` processes have reported their start.
fn started_n(r: &Rsup, n: usize) -> Vec<(String, String)> {
    wait_for(&format!("{n} starts"), || {
        let all = started(r);
        (all.len() >= n).then_some(all)
    })
}

#[test]
fn increment_var_counts_up_by_instance_and_keeps_its_value_across_scale() {
    for mode in ["fork", "cluster"] {
        let r = Rsup::new();
        let config = r.path("inc.config.js");
        std::fs::write(
            &config,
            format!(
                "module.exports = {{ apps: [{{ name: 'inc', script: {:?}, instances: 2, exec_mode: '{mode}', \
                 increment_var: 'PORT', env: {{ PORT: 3000, REPORT: {:?} }} }}] }};",
                fixture("app.js"),
                r.path("report"),
            ),
        )
        .unwrap();
        r.ok(&["start", config.to_str().unwrap()]);
        let mut first = started_n(&r, 2);
        first.sort();
        assert_eq!(
            first,
            [("0".into(), "3000".into()), ("1".into(), "3001".into())],
            "{mode}"
        );

        r.ok(&["scale", "inc", "4"]);
        started_n(&r, 4);
        r.ok(&["scale", "inc", "2"]);
        r.ok(&["scale", "inc", "3"]);
        let all = started_n(&r, 5);
        // The third instance comes back with index 2 and port 3002, as
        // it had before the scale down.
        assert_eq!(all.len(), 5, "{mode}: {all:?}");
        assert_eq!(all[4], ("2".into(), "3002".into()), "{mode}: {all:?}");
        let mut now: Vec<u32> = r.jlist().iter().map(|p| p.instance).collect();
        now.sort();
        assert_eq!(now, [0, 1, 2], "{mode}");

        // A restart keeps each instance's value.
        r.ok(&["restart", "inc"]);
        let mut again = started_n(&r, 8)[5..].to_vec();
        again.sort();
        assert_eq!(
            again,
            [
                ("0".into(), "3000".into()),
                ("1".into(), "3001".into()),
                ("2".into(), "3002".into())
            ],
            "{mode}"
        );
    }
}

#[test]
fn instance_var_flag_renames_node_app_instance() {
    let r = Rsup::new();
    assert_success(&r.start_fixture("app.js", "w", &["--instance-var", "APP_ID", "-i", "2"], &[]));
    let procs = r.jlist();
    assert!(procs.iter().all(|p| p.spec.instance_var == "APP_ID"));
    // app.js reports NODE_APP_INSTANCE, which no longer carries the index.
    assert!(started_n(&r, 2)
        .iter()
        .all(|(instance, _)| instance == "undefined"));
    assert!(r.ok(&["describe", "0"]).contains("│ APP_ID "));
}
