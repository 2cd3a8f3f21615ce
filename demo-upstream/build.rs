include!("../build-support/git_version.rs");

fn main() {
    emit_version();
}
