//! Container files: parse, analyze against a world where nothing exists,
//! and render every diagnostic (rendering indexes the text by span).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_container::parser::{self, analyze::EmptyWorld, Options};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = parser::parse(&text);
    for d in &parsed.errors {
        let _ = d.render("fuzz.vmc", &text);
    }
    let opts = Options {
        set: vec![("name".into(), "fuzz".into())],
        base_dir: "/nonexistent".into(),
    };
    match parser::analyze(&parsed.container, &text, &opts, &EmptyWorld) {
        Ok(_plan) => {}
        Err(diags) => {
            for d in &diags {
                let _ = d.render("fuzz.vmc", &text);
            }
        }
    }
});
