//! Finding rsup's Node preload (`node -r`), which makes `server.listen()`
//! take the daemon's sockets, and telling whether it can work: it needs
//! the package's native addon to receive them.

use std::path::{Path, PathBuf};

pub struct Preload {
    pub path: Option<PathBuf>,
    /// Why Node apps cannot take the daemon's sockets, when they cannot.
    pub problem: Option<String>,
}

impl Preload {
    /// `RSUP_PRELOAD`, else `preload.js` of the npm package this binary
    /// belongs to: built from source (`<package>/native/rsup`) or from the
    /// per-platform package installed beside it
    /// (`node_modules/rsup-<platform>/rsup` → `node_modules/rsup/`), else
    /// the one in this repository when running from a cargo build.
    pub fn find() -> Preload {
        let path = locate();
        let problem = match &path {
            None => Some("rsup's Node preload (npm/rsup/preload.js) was not found".to_string()),
            Some(p) if !has_addon(p) => Some(format!(
                "rsup's native addon is not built beside {} (npm installs it with rsup's optional dependencies; from a checkout: `node npm/rsup/scripts/build.js`)",
                p.display()
            )),
            Some(_) => None,
        };
        if let Some(problem) = &problem {
            tracing::warn!("{problem}: Node apps will bind their own ports");
        }
        Preload { path, problem }
    }
}

fn locate() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RSUP_PRELOAD") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    beside_binary(exe.parent()?)
}

fn beside_binary(dir: &Path) -> Option<PathBuf> {
    [
        dir.join("../preload.js"),
        dir.join("../rsup/preload.js"),
        dir.join("../../npm/rsup/preload.js"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .and_then(|p| p.canonicalize().ok())
}

/// Whether the addon the preload loads is there: `RSUP_NATIVE_BINDING`, a
/// `rsup.<platform>.node` beside it, or a per-platform package
/// (`rsup-<platform>`) in a `node_modules` above it, as
/// npm/rsup/lib/binding.js looks for them.
fn has_addon(preload: &Path) -> bool {
    if std::env::var_os("RSUP_NATIVE_BINDING").is_some_and(|p| Path::new(&p).is_file()) {
        return true;
    }
    let Some(package) = preload.parent() else {
        return false;
    };
    let built = std::fs::read_dir(package)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("rsup.") && name.ends_with(".node")
        });
    built
        || package.ancestors().any(|dir| {
            std::fs::read_dir(dir.join("node_modules"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("rsup-"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_of_the_per_platform_package_finds_the_main_packages_preload() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("node_modules");
        std::fs::create_dir_all(modules.join("rsup-linux-x64-gnu")).unwrap();
        std::fs::create_dir_all(modules.join("rsup")).unwrap();
        assert_eq!(beside_binary(&modules.join("rsup-linux-x64-gnu")), None);
        std::fs::write(modules.join("rsup/preload.js"), "").unwrap();
        assert_eq!(
            beside_binary(&modules.join("rsup-linux-x64-gnu")),
            Some(modules.join("rsup/preload.js").canonicalize().unwrap())
        );
    }

    #[test]
    fn the_addon_is_looked_for_beside_the_preload() {
        let dir = tempfile::tempdir().unwrap();
        let preload = dir.path().join("preload.js");
        std::fs::write(&preload, "").unwrap();
        assert!(!has_addon(&preload));
        std::fs::write(dir.path().join("rsup.linux-x64-gnu.node"), "").unwrap();
        assert!(has_addon(&preload));
    }
}
