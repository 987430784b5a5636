//! The stop signal: where it comes from and checking it is a real one.

use std::collections::BTreeMap;
use std::str::FromStr;

use nix::sys::signal::Signal;
use rsup_proto::app::defaults;

/// Normalises `TERM`, `sigterm` or `SIGTERM` to `SIGTERM`; `None` when it
/// names no signal of this platform.
pub fn normalise(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).ok().map(|s| s.as_str().to_string())
}

/// The app's signal (flag, then file), else `RSUP_KILL_SIGNAL`, else PM2's
/// `PM2_KILL_SIGNAL` so existing setups keep their signal, else SIGINT.
/// The error names where the bad value came from.
pub fn resolve(
    from_app: Option<(&str, &str)>,
    env: &BTreeMap<String, String>,
) -> Result<String, String> {
    let (origin, value) = match from_app {
        Some((origin, value)) => (origin.to_string(), value.to_string()),
        None => match ["RSUP_KILL_SIGNAL", "PM2_KILL_SIGNAL"]
            .iter()
            .find_map(|var| env.get(*var).filter(|v| !v.is_empty()).map(|v| (*var, v)))
        {
            Some((var, value)) => (format!("{var} in the environment"), value.clone()),
            None => return Ok(defaults::KILL_SIGNAL.to_string()),
        },
    };
    normalise(&value).ok_or_else(|| format!("{origin} is not a signal name: {value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn normalises_names() {
        assert_eq!(normalise("SIGTERM").as_deref(), Some("SIGTERM"));
        assert_eq!(normalise("term").as_deref(), Some("SIGTERM"));
        assert_eq!(normalise("sigusr2").as_deref(), Some("SIGUSR2"));
        assert_eq!(normalise("SIGFOO"), None);
        assert_eq!(normalise("15"), None);
    }

    #[test]
    fn precedence() {
        let both = env(&[("RSUP_KILL_SIGNAL", "TERM"), ("PM2_KILL_SIGNAL", "SIGHUP")]);
        assert_eq!(
            resolve(Some(("\"kill_signal\"", "USR2")), &both).unwrap(),
            "SIGUSR2"
        );
        assert_eq!(resolve(None, &both).unwrap(), "SIGTERM");
        assert_eq!(
            resolve(None, &env(&[("PM2_KILL_SIGNAL", "SIGHUP")])).unwrap(),
            "SIGHUP"
        );
        assert_eq!(resolve(None, &env(&[])).unwrap(), "SIGINT");
    }

    #[test]
    fn bad_signal_names_its_origin() {
        let err = resolve(None, &env(&[("PM2_KILL_SIGNAL", "NOPE")])).unwrap_err();
        assert!(err.contains("PM2_KILL_SIGNAL"), "{err}");
        let err = resolve(Some(("\"kill_signal\"", "NOPE")), &env(&[])).unwrap_err();
        assert!(err.starts_with("\"kill_signal\""), "{err}");
    }
}
