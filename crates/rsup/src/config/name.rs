//! Which app names rsup accepts.
//!
//! PM2 sets no rule (lib/API/schema.json: any string) and instead replaces
//! every character but letters, digits, `.` and `-` when it makes default
//! log file names. rsup keeps the name as it is in `<name>-out.log`, so it
//! refuses up front what would not make one file name in the logs folder,
//! or could never be named again on the command line.

/// Log files are `<name>-error-<id>.log` and must fit a file name (255
/// bytes on Linux); a name this long still leaves room for the suffixes.
pub const MAX_NAME_BYTES: usize = 128;

/// Why `name` cannot name an app, if it cannot.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name must not be empty".into());
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a name must be at most {MAX_NAME_BYTES} bytes long (it is part of log file names), this one has {}",
            name.len()
        ));
    }
    if name.contains('/') {
        // `../../etc` would put its logs two folders up, `a/b` in a folder.
        return Err("a name must not contain \"/\" (it is part of log file names)".into());
    }
    if name.chars().any(char::is_control) {
        return Err("a name must not contain control characters such as newlines or tabs".into());
    }
    // A name made of digits stays allowed, as in PM2: a number is an id
    // first and a name only when no process has that id, a documented
    // rule. "all", though, always means every app and could never name
    // this one.
    if name == "all" {
        return Err("\"all\" is the target for every app; it cannot name one".into());
    }
    Ok(())
}

/// Why `namespace` cannot name a namespace, if it cannot: it is typed as a
/// target, so it follows the rules of names except that it never makes a
/// file name.
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    if namespace.is_empty() {
        return Err("a namespace must not be empty".into());
    }
    if namespace.len() > MAX_NAME_BYTES {
        return Err(format!(
            "a namespace must be at most {MAX_NAME_BYTES} bytes long, this one has {}",
            namespace.len()
        ));
    }
    if namespace.chars().any(char::is_control) {
        return Err(
            "a namespace must not contain control characters such as newlines or tabs".into(),
        );
    }
    if namespace == "all" {
        return Err("\"all\" is the target for every app; it cannot name a namespace".into());
    }
    Ok(())
}

/// The name for a message: quoted and escaped, and cut short when long, so
/// the message stays one readable line.
pub fn shown(name: &str) -> String {
    const SHOWN_CHARS: usize = 40;
    if name.chars().count() <= SHOWN_CHARS {
        return format!("{name:?}");
    }
    let start: String = name.chars().take(SHOWN_CHARS).collect();
    format!("{start:?}… ({} bytes)", name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_names_people_use() {
        for name in [
            "api",
            "api.server",
            ".hidden",
            "my app",
            "worker-2",
            "api_v2",
            "café",
            "a1",
            "1a",
            "42",
            "..",
            "ALL",
            &"x".repeat(MAX_NAME_BYTES),
        ] {
            assert_eq!(check(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn refuses_names_that_are_not_one_file_name_or_one_target() {
        let refused = |name: &str, why: &str| {
            let e = check(name).unwrap_err();
            assert!(e.contains(why), "{name:?}: {e}");
        };
        refused("", "empty");
        refused("../../etc", "\"/\"");
        refused("a/b", "\"/\"");
        refused("/api/", "\"/\"");
        refused("a\nb", "control characters");
        refused("a\tb", "control characters");
        refused("a\0b", "control characters");
        refused("a\u{7f}", "control characters");
        refused("all", "every app");
        refused(&"x".repeat(MAX_NAME_BYTES + 1), "at most 128 bytes");
        refused(&"é".repeat(MAX_NAME_BYTES / 2 + 1), "at most 128 bytes");
    }

    #[test]
    fn namespaces() {
        for ns in ["default", "api/v2", "billing", "42"] {
            assert_eq!(check_namespace(ns), Ok(()), "{ns:?}");
        }
        for (ns, why) in [("", "empty"), ("a\nb", "control"), ("all", "every app")] {
            let e = check_namespace(ns).unwrap_err();
            assert!(e.contains(why), "{ns:?}: {e}");
        }
        assert!(check_namespace(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
    }

    #[test]
    fn shows_long_and_odd_names_on_one_short_line() {
        assert_eq!(shown("api"), "\"api\"");
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        let long = shown(&"x".repeat(10_000));
        assert!(long.len() < 70, "{long}");
        assert!(long.ends_with("… (10000 bytes)"), "{long}");
    }
}
