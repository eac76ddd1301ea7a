//! Colours of the charts on a light or a dark background.

use plotters::style::{Color, RGBAColor, RGBColor};

/// Background of the charts, and the colours that go with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Theme {
    /// Dark text on white.
    #[default]
    Light,
    /// Light text on near-black (#1e1e1e), for pages in a dark colour scheme.
    Dark,
}

/// Colours of overlaid runs: run i gets colour i. They are the blue,
/// vermillion, bluish green and reddish purple of the Okabe–Ito palette,
/// which was designed to stay distinguishable under the common forms of
/// colour blindness. The palette's orange, sky blue and yellow are left out
/// because they fall below a 3:1 contrast ratio on white, and its black
/// because it vanishes on the dark background. The four kept have at least
/// 3:1 on both backgrounds (the tests check it), so both themes use them.
const RUN_PALETTE: [RGBColor; 4] =
    [RGBColor(0, 114, 178), RGBColor(213, 94, 0), RGBColor(0, 158, 115), RGBColor(204, 121, 167)];

impl Theme {
    pub const ALL: [Theme; 2] = [Theme::Light, Theme::Dark];

    /// Returns the lowercase name, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    pub fn background(self) -> RGBColor {
        match self {
            Theme::Light => RGBColor(255, 255, 255),
            Theme::Dark => RGBColor(30, 30, 30),
        }
    }

    /// Colour of titles, labels and legend text.
    pub fn text(self) -> RGBColor {
        match self {
            Theme::Light => RGBColor(0, 0, 0),
            Theme::Dark => RGBColor(230, 230, 230),
        }
    }

    /// Colour of caption notes, quieter than the title.
    pub(crate) fn note_text(self) -> RGBColor {
        match self {
            Theme::Light => RGBColor(90, 90, 90),
            Theme::Dark => RGBColor(185, 185, 185),
        }
    }

    pub(crate) fn grid(self) -> RGBAColor {
        self.text().mix(if self == Theme::Dark { 0.18 } else { 0.12 })
    }

    pub(crate) fn legend_background(self) -> RGBAColor {
        self.background().mix(0.9)
    }

    pub(crate) fn legend_border(self) -> RGBAColor {
        self.text().mix(0.5)
    }

    /// Colour of reference lines (ln V) and of the legend samples that
    /// explain a stroke rather than name a run.
    pub(crate) fn neutral(self) -> RGBColor {
        match self {
            Theme::Light => RGBColor(110, 110, 110),
            Theme::Dark => RGBColor(165, 165, 165),
        }
    }

    /// Opacity of the per-step training-batch loss line, faint next to the
    /// evaluation lines but still visible on this background.
    pub(crate) fn faint_alpha(self) -> f64 {
        match self {
            Theme::Light => 0.3,
            Theme::Dark => 0.5,
        }
    }

    /// Colour of heat-map cells without a value that can be placed.
    pub(crate) fn missing_cell(self) -> RGBColor {
        match self {
            Theme::Light => RGBColor(190, 190, 190),
            Theme::Dark => RGBColor(95, 95, 95),
        }
    }

    /// Returns the colour of the run at `index` of an overlay; indices past
    /// the palette wrap around.
    pub fn run_colour(self, index: usize) -> RGBColor {
        RUN_PALETTE[index % RUN_PALETTE.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative luminance of an sRGB colour, as WCAG 2 defines it.
    fn luminance(colour: RGBColor) -> f64 {
        let linear = |channel: u8| {
            let c = channel as f64 / 255.0;
            if c <= 0.03928 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        };
        0.2126 * linear(colour.0) + 0.7152 * linear(colour.1) + 0.0722 * linear(colour.2)
    }

    /// WCAG 2 contrast ratio, from 1 (same luminance) to 21.
    fn contrast(a: RGBColor, b: RGBColor) -> f64 {
        let (la, lb) = (luminance(a), luminance(b));
        (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
    }

    #[test]
    fn run_colours_contrast_with_both_backgrounds() {
        for theme in Theme::ALL {
            for index in 0..RUN_PALETTE.len() {
                let ratio = contrast(theme.run_colour(index), theme.background());
                assert!(ratio >= 3.0, "{theme:?} run {index}: contrast {ratio:.2}");
            }
        }
    }

    #[test]
    fn text_contrasts_with_background() {
        for theme in Theme::ALL {
            let text = contrast(theme.text(), theme.background());
            assert!(text >= 7.0, "{theme:?}: text contrast {text:.2}");
            let notes = contrast(theme.note_text(), theme.background());
            assert!(notes >= 4.5, "{theme:?}: note contrast {notes:.2}");
            let neutral = contrast(theme.neutral(), theme.background());
            assert!(neutral >= 3.0, "{theme:?}: neutral contrast {neutral:.2}");
        }
    }

    #[test]
    fn run_colours_are_distinct() {
        for a in 0..RUN_PALETTE.len() {
            for b in a + 1..RUN_PALETTE.len() {
                assert_ne!(Theme::Light.run_colour(a), Theme::Light.run_colour(b));
            }
        }
    }
}
