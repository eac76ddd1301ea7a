//! Figure files (SVG and PNG) and the font that native text rendering needs.

use super::render::drawing_error;
use super::{check_size, draw_figure, panels, ChartRun, PlotError, PlotOptions, FONT_FAMILY, MIN_FIGURE_HEIGHT, MIN_FIGURE_WIDTH};
use plotters::prelude::{BitMapBackend, DrawingBackend, IntoDrawingArea, SVGBackend};
use plotters::style::{register_font, FontStyle};
use std::ffi::OsString;
use std::path::Path;
use std::sync::OnceLock;

/// Environment variable naming a TrueType font file to use instead of [`FONT_PATHS`].
pub const FONT_ENV: &str = "LNLAB_FONT";

/// Font files tried in order, at their Debian paths (packages
/// fonts-dejavu-core, fonts-liberation2, fonts-liberation, fonts-freefont-ttf).
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Outcome of the one font registration of this process.
static CHART_FONT: OnceLock<Result<(), PlotError>> = OnceLock::new();

/// Registers the chart font under [`FONT_FAMILY`]: the file that
/// `LNLAB_FONT` names, or else the first of [`FONT_PATHS`] that exists.
/// Reads the file once per process and keeps its bytes for the life of the
/// process, as plotters requires. Later calls return the first outcome.
pub fn register_chart_font() -> Result<(), PlotError> {
    CHART_FONT
        .get_or_init(|| {
            let (path, bytes) = read_font(std::env::var_os(FONT_ENV), FONT_PATHS)?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font(FONT_FAMILY, FontStyle::Normal, bytes).map_err(|_| PlotError::FontInvalid { path })
        })
        .clone()
}

/// Reads the font that `override_path` names, or else the first readable
/// file of `candidates`. Returns its path and bytes.
fn read_font(override_path: Option<OsString>, candidates: &[&str]) -> Result<(String, Vec<u8>), PlotError> {
    let paths: Vec<String> = match override_path.filter(|p| !p.is_empty()) {
        Some(path) => vec![path.to_string_lossy().into_owned()],
        None => candidates.iter().map(|p| p.to_string()).collect(),
    };
    let mut tried = Vec::new();
    for path in paths {
        match std::fs::read(&path) {
            Ok(bytes) => return Ok((path, bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => tried.push(path),
            Err(error) => tried.push(format!("{path} ({error})")),
        }
    }
    Err(PlotError::FontMissing { tried })
}

/// Draws the figure of [`draw_figure`] for `runs` into `path`, as SVG for
/// a `.svg` name and PNG for a `.png` name, at `options.width` ×
/// `options.height` pixels. Checks the runs and options and finds the font
/// before touching the file, so a failed check leaves no file behind.
pub fn write_figure(runs: &[ChartRun], path: &Path, options: &PlotOptions) -> Result<(), PlotError> {
    let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if extension != "svg" && extension != "png" {
        return Err(PlotError::UnsupportedExtension {
            path: path.display().to_string(),
            extension: if extension.is_empty() { "(none)".to_string() } else { extension },
        });
    }
    check_size(options, MIN_FIGURE_WIDTH, MIN_FIGURE_HEIGHT)?;
    panels::select_evals(runs, options)?;
    register_chart_font()?;

    let size = (options.width, options.height);
    let write_error = |message: String| PlotError::Write { path: path.display().to_string(), message };
    if extension == "svg" {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            draw_figure(&root, runs, options)?;
            root.present().map_err(drawing_error)?;
        }
        std::fs::write(path, svg).map_err(|e| write_error(e.to_string()))
    } else {
        // Draw into memory first: a file backend writes whatever it holds
        // when dropped, so a failed drawing would leave a partial PNG.
        let mut pixels = vec![0u8; options.width as usize * options.height as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
            draw_figure(&root, runs, options)?;
            root.present().map_err(drawing_error)?;
        }
        let mut file = BitMapBackend::new(path, size);
        file.blit_bitmap((0, 0), size, &pixels).map_err(|e| write_error(e.to_string()))?;
        file.present().map_err(|e| write_error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_override_font_names_the_path() {
        let missing = std::env::temp_dir().join("lnlab-no-such-font.ttf");
        let error = read_font(Some(missing.clone().into_os_string()), FONT_PATHS).unwrap_err();
        assert_eq!(error, PlotError::FontMissing { tried: vec![missing.display().to_string()] });
        let message = error.to_string();
        assert!(message.contains("fonts-dejavu-core"), "{message}");
        assert!(message.contains("LNLAB_FONT"), "{message}");
    }

    #[test]
    fn missing_candidates_are_all_listed() {
        let error = read_font(None, &["/nonexistent/a.ttf", "/nonexistent/b.ttf"]).unwrap_err();
        assert_eq!(error, PlotError::FontMissing { tried: vec!["/nonexistent/a.ttf".into(), "/nonexistent/b.ttf".into()] });
    }

    #[test]
    fn empty_override_falls_back_to_candidates() {
        let error = read_font(Some(OsString::new()), &["/nonexistent/a.ttf"]).unwrap_err();
        assert_eq!(error, PlotError::FontMissing { tried: vec!["/nonexistent/a.ttf".into()] });
    }
}
