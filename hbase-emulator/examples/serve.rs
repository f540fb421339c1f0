//! Serves the emulator on the address given (default 127.0.0.1:9090) until killed.

fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9090".into());
    let emu = hbase_emulator::start(&addr, Default::default()).expect("bind");
    println!("listening on {}", emu.local_addr());
    loop {
        std::thread::park();
    }
}
