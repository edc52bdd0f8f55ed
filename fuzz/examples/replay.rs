//! Replays one input of a structured target with its decoded form printed first: the way to see
//! what a crash found by the fuzzer does.
//!
//! `cargo run --example replay -- mux_core artifacts/mux_core/crash-…` (or `transport`,
//! `qmux_core`), from `fuzz/`.

use arbitrary::{Arbitrary, Unstructured};
use ws_stream_mux_fuzz::{
    mux_core::{self, MuxInput},
    qmux_core::{self, QmuxInput},
    transport::{self, TransportInput},
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, path] = &args[..] else {
        panic!("usage: replay (mux_core|transport|qmux_core) FILE");
    };
    let bytes = std::fs::read(path).expect("a readable input file");
    let u = Unstructured::new(&bytes);
    match target.as_str() {
        "mux_core" => {
            let input = MuxInput::arbitrary_take_rest(u).expect("every input decodes");
            println!("{:?}, {:?}", input.side, input.config.config());
            for op in &input.ops {
                println!("  {op:?}");
            }
            mux_core::run(&input);
        }
        "qmux_core" => {
            let input = QmuxInput::arbitrary_take_rest(u).expect("every input decodes");
            println!(
                "{:?}, {:?}, {:?}",
                input.side,
                input.version,
                input.config.config()
            );
            for op in &input.ops {
                println!("  {op:?}");
            }
            qmux_core::run(&input);
        }
        "transport" => {
            let input = TransportInput::arbitrary_take_rest(u).expect("every input decodes");
            println!("{input:?}");
            transport::run(&input);
        }
        other => panic!("no structured target {other}"),
    }
    println!("ran clean");
}
