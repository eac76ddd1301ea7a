//! One chart on the page: the canvas, its caption, its data table and its
//! PNG and SVG downloads.

use super::{browser, charts, tables, Lab};
use crate::io::run_file::RunFile;
use crate::plot::{chart_svg, ChartKind, ChartRun, PlotOptions};
use leptos::html;
use leptos::prelude::*;
use wasm_bindgen::JsCast;

/// Size of a downloaded SVG chart, in pixels.
const SVG_SIZE: (u32, u32) = (960, 600);

/// Returns the drawing choices of the page's view options and theme.
pub fn plot_options(lab: Lab) -> PlotOptions {
    let view = lab.view.get();
    PlotOptions {
        metric: view.metric,
        layer_scale: view.layer_scale,
        loss_scale: view.loss_scale,
        x_scale: view.x_scale,
        theme: lab.theme.get(),
        ..PlotOptions::default()
    }
}

/// Borrows labelled runs as chart runs.
pub fn chart_runs(runs: &[(String, RunFile)]) -> Vec<ChartRun<'_>> {
    runs.iter().map(|(label, run)| ChartRun { run, label: label.clone() }).collect()
}

#[component]
pub fn Figure(lab: Lab, kind: ChartKind, id: &'static str, label: &'static str) -> impl IntoView {
    let canvas = NodeRef::<html::Canvas>::new();
    let message = RwSignal::new(None::<String>);
    let shown = lab.shown;
    Effect::new(move |_| {
        let runs = shown.get();
        let options = plot_options(lab);
        let Some(element) = canvas.get() else { return };
        let element: web_sys::HtmlCanvasElement = element.unchecked_into();
        if runs.is_empty() {
            // Setting the width clears the canvas, so no chart of a
            // removed run stays on screen.
            element.set_width(element.width());
            message.set(Some("Press Train, or pick runs in the run list, to see this chart.".into()));
        } else {
            let drawn = charts::draw(&element, kind, &chart_runs(&runs), &options).err();
            // A divergence is named under every chart, since the lines stop there.
            let diverged: Vec<String> = runs.iter().filter_map(|(label, run)| run.non_finite.as_ref().map(|nf| format!("{label} diverged: {}", crate::page::divergence::describe(nf)))).collect();
            let notes: Vec<String> = drawn.into_iter().chain(diverged).collect();
            message.set((!notes.is_empty()).then(|| notes.join("; ")));
        }
    });
    let save_png = move |_| {
        let Some(element) = canvas.get_untracked() else { return };
        let element: web_sys::HtmlCanvasElement = element.unchecked_into();
        let result = element.to_data_url().map_err(|_| "the browser could not encode the chart".to_string()).and_then(|url| browser::click_link(&format!("lnlab-{id}.png"), &url));
        if let Err(error) = result {
            lab.error.set(Some(format!("Saving the chart as PNG failed: {error}.")));
        }
    };
    let save_svg = move |_| {
        let runs = shown.get_untracked();
        let options = PlotOptions { width: SVG_SIZE.0, height: SVG_SIZE.1, ..plot_options(lab) };
        let result = chart_svg(kind, &chart_runs(&runs), &options)
            .map_err(|e| e.to_string())
            .and_then(|svg| browser::download(&format!("lnlab-{id}.svg"), "image/svg+xml", svg.as_bytes()));
        if let Err(error) = result {
            lab.error.set(Some(format!("Saving the chart as SVG failed: {error}.")));
        }
    };
    let table = move || {
        let runs = shown.get();
        let metric = lab.view.with(|v| v.metric);
        tables::chart_table(kind, &runs, metric)
    };
    view! {
        <figure class="chart">
            <canvas id=id role="img" aria-label=label node_ref=canvas></canvas>
            <figcaption>
                {label} {move || message.get().map(|m| format!(" — {m}"))}
                <span class="chart-actions">
                    <button type="button" class="small" disabled=move || shown.with(|r| r.is_empty()) on:click=save_png data-save=format!("{id}-png")>"PNG"</button>
                    <button type="button" class="small" disabled=move || shown.with(|r| r.is_empty()) on:click=save_svg data-save=format!("{id}-svg")>"SVG"</button>
                </span>
            </figcaption>
            <details class="chart-data">
                <summary>"Numbers in this chart"</summary>
                <div class="table-scroll">
                    {move || {
                        let table = table();
                        view! {
                            <table data-chart=id>
                                <thead><tr>{table.header.into_iter().map(|h| view! { <th scope="col">{h}</th> }).collect_view()}</tr></thead>
                                <tbody>
                                    {table.rows.into_iter().map(|row| {
                                        let mut cells = row.into_iter();
                                        let key = cells.next().unwrap_or_default();
                                        view! { <tr><th scope="row">{key}</th>{cells.map(|c| view! { <td>{c}</td> }).collect_view()}</tr> }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                    }}
                </div>
            </details>
        </figure>
    }
}
