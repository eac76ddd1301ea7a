//! The lab page, built for the browser by Trunk (`trunk build`). On other
//! targets this binary only explains how to open the lab.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(lnlab::web::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("lnlab-web is the browser page; build and serve it with scripts/lab.sh");
    std::process::exit(2);
}
