//! vigil-exporter binary (skeleton).
fn main() {
    eprintln!("vigil-exporter: not built yet");
    std::process::exit(2);
}
