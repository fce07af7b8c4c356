//! `avx512_host`: the build host has AVX-512 and is the target, so the grid-convolution
//! test (which needs AVX-512 at run time) is compiled; elsewhere it does not exist rather
//! than passing without checking anything.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(avx512_host)");
    let native = std::env::var("HOST").ok() == std::env::var("TARGET").ok();
    #[cfg(target_arch = "x86_64")]
    if native && std::is_x86_feature_detected!("avx512f") {
        println!("cargo::rustc-cfg=avx512_host");
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = native;
}
