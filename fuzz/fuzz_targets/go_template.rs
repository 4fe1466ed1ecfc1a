//! Fuzzes the Go-template engine of rule annotations: any text is parsed
//! and, when it parses, expanded for one alert; template errors are fine,
//! a panic, a stack overflow or a hang is a bug.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vigil_evaluator::rules::template::{Template, TemplateData, TemplateSample};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(template) = Template::parse("__alert_Fuzz", text) else {
        return;
    };
    let data = TemplateData {
        labels: BTreeMap::from([
            ("instance".to_string(), "host:9100".to_string()),
            ("job".to_string(), "node".to_string()),
        ]),
        external_labels: BTreeMap::from([("cluster".to_string(), "c1".to_string())]),
        external_url: "http://vigil:9320".to_string(),
        value: 0.125,
    };
    let query = |_: &str| -> Result<Vec<TemplateSample>, String> {
        Ok(vec![TemplateSample {
            labels: BTreeMap::from([("job".to_string(), "node".to_string())]),
            value: 2.0,
        }])
    };
    let _ = template.execute(&data, &query);
});
