//! Reading apps from PM2 ecosystem files and `rsup start` flags into
//! fully resolved [`rsup_proto::app::AppSpec`]s.
