//! Plain Xen configs, as `xl` would read them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_container::xen;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (stmts, _errors) = xen::parse_config(&text);
    if let Ok(settings) = xen::apply_all(&stmts) {
        for v in settings.values() {
            let _ = xen::render(v);
        }
    }
});
