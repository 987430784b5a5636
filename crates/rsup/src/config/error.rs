//! Errors from reading apps. Each renders as one line that names the file
//! (or script), the app and the key, so the CLI can print it as is.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: file not found: {}", path.display())]
    FileNotFound { file: String, path: PathBuf },

    #[error("{file}: cannot be read: {reason}")]
    Unreadable { file: String, reason: String },

    /// The file exists but node (or the JSON parser) rejected it.
    #[error("{file}: does not evaluate: {reason}")]
    Evaluate { file: String, reason: String },

    /// The file evaluated but its overall shape is wrong (no apps, an app
    /// that is not an object, duplicate names, `--only` matching nothing).
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },

    /// One app of a config file is wrong; `app` is a ready label such as
    /// `app "api"` or `app #2`.
    #[error("{file}: {app}: {reason}")]
    App {
        file: String,
        app: String,
        reason: String,
    },

    /// `rsup start <script>` with something wrong in the script or flags.
    #[error("{script}: {reason}")]
    Script { script: String, reason: String },
}
