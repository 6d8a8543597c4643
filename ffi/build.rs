//! Gives the installed shared library its soname (`libtickcast.so.0.1` for
//! 0.1.x: before 1.0 a minor release may break the ABI), so programs linked
//! against one release keep loading a compatible one. Only when
//! `TICKCAST_SONAME` is set (the install target sets it): an in-tree build
//! stays a plain `libtickcast.so` that programs find by their rpath.
fn main() {
    println!("cargo:rerun-if-env-changed=TICKCAST_SONAME");
    if std::env::var_os("TICKCAST_SONAME").is_some() {
        let major = env!("CARGO_PKG_VERSION_MAJOR");
        let minor = env!("CARGO_PKG_VERSION_MINOR");
        let soversion = if major == "0" {
            format!("0.{minor}")
        } else {
            major.to_string()
        };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtickcast.so.{soversion}");
    }
}
