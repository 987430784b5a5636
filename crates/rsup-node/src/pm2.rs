//! PM2's shape of the process list for the Node API (`rsup/pm2`): the
//! daemon's processes rewritten by the same code as `rsup jlist`
//! (`rsup_proto::pm2`), so the JavaScript side never builds it itself.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use rsup_proto::app::ProcessInfo;
use rsup_proto::pm2::MonitorData;

/// PM2's getMonitorData, as JSON, of the daemon's process list as JSON.
#[napi(js_name = "pm2MonitorData")]
pub fn pm2_monitor_data(processes: String) -> Result<String> {
    monitor_data_json(&processes).map_err(Error::from_reason)
}

fn monitor_data_json(processes: &str) -> std::result::Result<String, String> {
    let processes: Vec<ProcessInfo> =
        serde_json::from_str(processes).map_err(|e| format!("unreadable process list: {e}"))?;
    serde_json::to_string(&MonitorData(&processes))
        .map_err(|e| format!("writing the process list: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_stays_empty_and_garbage_is_refused() {
        assert_eq!(monitor_data_json("[]").unwrap(), "[]");
        let err = monitor_data_json("[{\"id\": 1}]").unwrap_err();
        assert!(err.contains("unreadable process list"), "{err}");
    }
}
