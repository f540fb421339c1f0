//! Writes the `thrift` seed corpus (fuzz/seeds/thrift/) from `seeds::thrift_requests`.
//!
//! `cargo run -p fuzz-bodies --example thrift_seeds`

fn main() {
    let dir = fuzz_bodies::seeds::dir("thrift");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in fuzz_bodies::seeds::thrift_requests() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
