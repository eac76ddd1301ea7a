//! The lab page, built for the browser by Trunk (`trunk build`). On other
//! targets this binary only explains how to open the lab.

#[cfg(target_arch = "wasm32")]
fn main() {
    // Before mounting, so a panic while the page builds also shows the
    // crash panel (and is still logged to the console).
    lnlab::web::crash::install();
    leptos::mount::mount_to_body(lnlab::web::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("lnlab-web is the browser page; build and serve it with scripts/lab.sh");
    std::process::exit(2);
}
