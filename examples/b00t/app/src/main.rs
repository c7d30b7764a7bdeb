//! Prints the version of the OpenSSL it is dynamically linked with.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

#[link(name = "ssl")]
#[link(name = "crypto")]
extern "C" {
    fn OpenSSL_version(t: c_int) -> *const c_char;
}

fn main() {
    // OPENSSL_VERSION = 0
    let v = unsafe { CStr::from_ptr(OpenSSL_version(0)) };
    println!("b00t app, linked with {}", v.to_string_lossy());
}
