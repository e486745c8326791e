"""The report as one self-contained HTML page for an energy analyst: no scripts, no external
resources; charts are inline SVG; every piece of user data is escaped; prints cleanly."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape
from zoneinfo import ZoneInfo

from reports.formatting import kwh, local_minutes, money, percent, rfc3339
from reports.model import ReportData
from reports.summary import AnomalyRow, DayPoint, DeviceSummary, ReportSummary, summarise
from reports.svg import BarMarks, ChartFrame, bar_chart, line_chart

# Fill colours of the chart series; used nowhere else on the page (the screenshot test
# finds the charts by them).
ENERGY_COLOR = "#2563eb"
COST_COLOR = "#059669"
PROFILE_LINE_COLOR = "#c2410c"
PROFILE_AREA_COLOR = "#fdba74"
ANOMALY_COLOR = "#dc2626"

MAX_DEVICE_SECTIONS = 10
MAX_TABLE_DEVICES = 500
MAX_ANOMALY_ROWS = 100
MAX_DEVICE_ANOMALY_ROWS = 20
_DEVICE_FRAME = ChartFrame(height=240)

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial,
  sans-serif; color: #111827; background: #ffffff; max-width: 940px; margin: 0 auto;
  padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d1d5db; }
h3 { font-size: 16px; margin: 24px 0 6px; word-break: break-all; }
.subtitle { color: #4b5563; margin: 0 0 16px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dl.meta dt { color: #4b5563; }
dl.meta dd { margin: 0; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px;
  margin: 12px 0; }
.card { border: 1px solid #d1d5db; border-radius: 6px; padding: 8px 12px; }
.card .label { color: #4b5563; font-size: 12px; }
.card .value { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 4px 8px; text-align: left;
  vertical-align: top; }
th { color: #374151; font-weight: 600; border-bottom: 1px solid #9ca3af; }
td.num, th.num { text-align: right; white-space: nowrap; }
td.id { word-break: break-all; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 10px 0; }
.note { color: #4b5563; font-size: 13px; }
.warning { border-left: 4px solid #b45309; background: #fffbeb; padding: 8px 12px; }
.empty { border: 2px dashed #9ca3af; padding: 24px; font-size: 18px; text-align: center; }
.flag { color: #b91c1c; font-weight: 600; }
footer { margin-top: 32px; color: #4b5563; font-size: 12px; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  h2, h3 { break-after: avoid; }
  section.device, svg.chart, table.keep { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
  @page { margin: 14mm; }
}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


class _Page:
    """Unique chart ids across the document (aria-labelledby needs them)."""

    def __init__(self) -> None:
        self._count = 0

    def chart_id(self) -> str:
        self._count += 1
        return f"chart-{self._count}"


def render_html(
    data: ReportData,
    summary: ReportSummary | None = None,
    *,
    max_device_sections: int = MAX_DEVICE_SECTIONS,
    max_table_devices: int = MAX_TABLE_DEVICES,
) -> bytes:
    summary = summary or summarise(data)
    zone = ZoneInfo(data.timezone)
    page = _Page()
    title = "Energy consumption report"
    first, last = data.parameters.start, data.parameters.end
    period = f"{first.astimezone(zone):%Y-%m-%d} to {last.astimezone(zone):%Y-%m-%d} (exclusive)"
    body: list[str] = [
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="subtitle">{_e(period)}, local time {_e(data.timezone)}</p>',
        _meta(data, summary),
        "</header>",
    ]
    if summary.other_currencies:
        others = ", ".join(f"{count} in {cur}" for cur, count in summary.other_currencies.items())
        body.append(
            f'<p class="warning">Some windows are priced in another currency than'
            f" {_e(summary.currency)} ({_e(others)}); their cost is not included in the"
            " totals or the cost charts. Their energy is.</p>"
        )
    if summary.is_empty:
        devices = (
            "any device"
            if data.parameters.device_ids is None
            else ", ".join(data.parameters.device_ids)
        )
        body.append(
            '<section><p class="empty"><strong>No data.</strong> No hour or day windows were'
            f" found for {_e(devices)} between {_e(period)} ({_e(data.timezone)}).</p></section>"
        )
    else:
        body.append(_overview(summary, page))
        body.append(_device_table(summary, max_table_devices, max_device_sections))
        body.append(_anomaly_section(summary))
        body.append(_device_sections(summary, page, max_device_sections))
    body.append(_method_notes(summary))
    body.append(
        f"<footer>Generated {_e(rfc3339(data.generated_at))} by energy-processing"
        + ("" if data.job_id is None else f", job {_e(data.job_id)}")
        + ".</footer>"
    )
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}: {_e(period)}</title>\n<style>{CSS}</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
    return document.encode("utf-8")


def _meta(data: ReportData, summary: ReportSummary) -> str:
    zone = ZoneInfo(data.timezone)
    parameters = data.parameters
    devices = (
        "all devices with data"
        if parameters.device_ids is None
        else ", ".join(parameters.device_ids)
    )
    rows = [
        (
            "Period covered",
            f"{local_minutes(parameters.start, zone)} to "
            f"{local_minutes(parameters.end, zone)} ({len(summary.days)} local days)",
        ),
        (
            "Requested",
            f"{rfc3339(parameters.requested_start)} to {rfc3339(parameters.requested_end)}",
        ),
        ("Devices requested", devices),
        ("Time zone", data.timezone),
        ("Currency", summary.currency),
        ("Formats", ", ".join(parameters.formats)),
        (
            "Generated at",
            f"{rfc3339(data.generated_at)} ({local_minutes(data.generated_at, zone)}"
            f" {data.timezone})",
        ),
    ]
    if data.job_id is not None:
        rows.append(("Job", str(data.job_id)))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<dl class="meta">{items}</dl>'


def _card(label: str, value: str) -> str:
    return f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div></div>'


def _overview(summary: ReportSummary, page: _Page) -> str:
    flagged = len(summary.anomalies)
    cards = [
        _card("Total energy", f"{kwh(summary.energy_kwh)} kWh"),
        _card("Total cost", f"{money(summary.cost)} {summary.currency}"),
        _card("Devices", f"{len(summary.devices):,}"),
        _card("Mean coverage", percent(summary.coverage or 0.0)),
        _card("Flagged windows", f"{flagged:,}"),
    ]
    return (
        '<section id="overview"><h2>All devices</h2>'
        f'<div class="cards">{"".join(cards)}</div>'
        + _charts(summary.daily, summary.hourly_profile, summary, page, "all devices", None)
        + "</section>"
    )


def _day_labels(points: Sequence[DayPoint]) -> list[str]:
    return [f"{point.day:%d %b}" for point in points]


def _charts(
    daily: Sequence[DayPoint],
    profile: Sequence[float | None],
    summary: ReportSummary,
    page: _Page,
    subject: str,
    frame: ChartFrame | None,
) -> str:
    labels = _day_labels(daily)
    energies = [point.energy_kwh for point in daily]
    costs = [None if point.cost is None else float(point.cost) for point in daily]
    flagged = [point.flagged_days > 0 for point in daily]
    marked = [point.flagged_hours > 0 for point in daily]
    x_title = f"Local date ({summary.timezone})"
    present = [(p.day, p.energy_kwh) for p in daily if p.energy_kwh is not None]
    peak = max(present, key=lambda item: item[1]) if present else None
    energy_desc = (
        f"Daily energy of {subject} over {len(daily)} days, "
        f"total {kwh(sum(v for _, v in present))} kWh"
        + (f", highest {kwh(peak[1])} kWh on {peak[0].isoformat()}" if peak else "")
        + f"; {sum(flagged)} days with a flagged day window, "
        f"{sum(marked)} days with flagged hour windows."
    )
    energy = bar_chart(
        chart_id=page.chart_id(),
        title=f"Daily energy: {subject}",
        description=energy_desc,
        labels=labels,
        values=energies,
        unit="kWh",
        x_title=x_title,
        color=ENERGY_COLOR,
        series_label="energy per day",
        value_format=kwh,
        marks=BarMarks(
            flagged=flagged,
            flag_color=ANOMALY_COLOR,
            flag_label="day flagged anomalous",
            marked=marked,
            marker_color=ANOMALY_COLOR,
            marker_label="flagged hours that day",
        ),
        frame=frame,
    )
    hours = [f"{hour:02d}" for hour in range(24)]
    profile_present = [v for v in profile if v is not None]
    profile_chart = line_chart(
        chart_id=page.chart_id(),
        title=f"Average hourly profile: {subject}",
        description=(
            f"Mean energy per local hour of day of {subject}"
            + (
                f", from {kwh(min(profile_present))} to {kwh(max(profile_present))} kWh"
                if profile_present
                else ", no hour windows"
            )
            + "."
        ),
        labels=hours,
        values=profile,
        unit="kWh per hour",
        x_title=f"Local hour of day ({summary.timezone})",
        line_color=PROFILE_LINE_COLOR,
        area_color=PROFILE_AREA_COLOR,
        series_label="mean energy in the hour (= mean kW)",
        value_format=kwh,
        frame=frame,
    )
    cost_chart = bar_chart(
        chart_id=page.chart_id(),
        title=f"Daily cost: {subject}",
        description=(
            f"Daily cost of {subject} in {summary.currency} over {len(daily)} days, total "
            f"{money(sum((p.cost for p in daily if p.cost is not None), start=Decimal(0)))}"
            f" {summary.currency}."
        ),
        labels=labels,
        values=costs,
        unit=summary.currency,
        x_title=x_title,
        color=COST_COLOR,
        series_label=f"cost per day ({summary.currency})",
        value_format=lambda value: f"{value:,.2f}",
        marks=BarMarks(
            flagged=flagged,
            flag_color=ANOMALY_COLOR,
            flag_label="day flagged anomalous",
        ),
        frame=frame,
    )
    return energy + profile_chart + cost_chart


def _device_table(summary: ReportSummary, limit: int, linked: int) -> str:
    total = summary.energy_kwh
    rows = []
    for index, device in enumerate(summary.devices[:limit]):
        share = device.energy_kwh / total if total > 0 else 0.0
        name = _e(device.device_id)
        if index < linked:
            name = f'<a href="#device-{index + 1}">{name}</a>'
        flagged = len(device.anomalies)
        rows.append(
            f'<tr><td class="id">{name}</td><td class="num">{kwh(device.energy_kwh)}</td>'
            f'<td class="num">{money(device.cost)}</td><td class="num">{percent(share)}</td>'
            f'<td class="num">{percent(device.coverage)}</td>'
            f'<td class="num">{device.days_with_data}/{len(summary.days)}</td>'
            f'<td class="num">{_power(device.peak_power_w)}</td>'
            f'<td class="num{" flag" if flagged else ""}">{flagged}</td></tr>'
        )
    rest = summary.devices[limit:]
    if rest:
        rest_energy = sum(d.energy_kwh for d in rest)
        rest_cost = sum((d.cost for d in rest), start=Decimal(0))
        rows.append(
            f'<tr><td class="id"><em>{len(rest):,} more devices</em></td>'
            f'<td class="num">{kwh(rest_energy)}</td><td class="num">{money(rest_cost)}</td>'
            f'<td class="num">{percent(rest_energy / total if total > 0 else 0.0)}</td>'
            f"<td></td><td></td><td></td>"
            f'<td class="num">{sum(len(d.anomalies) for d in rest)}</td></tr>'
        )
    return (
        '<section id="devices"><h2>Devices</h2>'
        f'<p class="note">{len(summary.devices):,} devices, highest energy first.'
        " Coverage is the share of the period with readings; peak power is the highest"
        " power reading.</p>"
        '<table><thead><tr><th>Device</th><th class="num">Energy (kWh)</th>'
        f'<th class="num">Cost ({_e(summary.currency)})</th><th class="num">Share</th>'
        '<th class="num">Coverage</th><th class="num">Days with data</th>'
        '<th class="num">Peak power</th><th class="num">Flagged</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _short(text: str, limit: int = 48) -> str:
    """A device id short enough for a chart title (the section heading shows it whole)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _power(watts: float | None) -> str:
    if watts is None:
        return "&#8211;"
    return f"{watts / 1000:,.2f} kW" if watts >= 1000 else f"{watts:,.0f} W"


def _anomaly_table(rows: Sequence[AnomalyRow], zone: ZoneInfo, with_device: bool) -> str:
    head = (
        ("<th>Device</th>" if with_device else "")
        + '<th>Window (local)</th><th>Period</th><th class="num">Energy (kWh)</th>'
        + '<th class="num">Cost</th><th class="num">Score</th>'
    )
    body = []
    for row in rows:
        window = f"{local_minutes(row.window_start, zone)} to {local_minutes(row.window_end, zone)}"
        score = "&#8211;" if row.anomaly_score is None else f"{row.anomaly_score:.3f}"
        body.append(
            "<tr>"
            + (f'<td class="id">{_e(row.device_id)}</td>' if with_device else "")
            + f"<td>{_e(window)}</td><td>{_e(row.period)}</td>"
            f'<td class="num">{kwh(row.energy_kwh)}</td>'
            f'<td class="num">{money(row.cost)} {_e(row.currency)}</td>'
            f'<td class="num">{score}</td></tr>'
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _anomaly_section(summary: ReportSummary) -> str:
    zone = ZoneInfo(summary.timezone)
    rows = summary.anomalies
    if not rows:
        return (
            '<section id="anomalies"><h2>Flagged anomalies</h2>'
            '<p class="note">No window in this period was flagged anomalous.</p></section>'
        )
    shown = rows[:MAX_ANOMALY_ROWS]
    more = (
        f" The {len(shown)} highest scores are listed; all {len(rows):,} are in the CSV and JSON."
        if len(rows) > len(shown)
        else ""
    )
    return (
        '<section id="anomalies"><h2>Flagged anomalies</h2>'
        f'<p class="note">{len(rows):,} hour and day windows were flagged by the anomaly'
        " detector (score in 0..1, higher is more unusual for that device); on the daily"
        f" charts, flagged days are red and a red triangle marks days with flagged hours.{more}</p>"
        + _anomaly_table(shown, zone, with_device=True)
        + "</section>"
    )


def _device_sections(summary: ReportSummary, page: _Page, limit: int) -> str:
    zone = ZoneInfo(summary.timezone)
    shown = summary.devices[:limit]
    parts = ['<section id="per-device"><h2>Per device</h2>']
    if len(summary.devices) > len(shown):
        parts.append(
            f'<p class="note">Charts for the {len(shown)} devices with the most energy; the'
            f" other {len(summary.devices) - len(shown):,} are in the device table above and"
            " in the CSV and JSON files.</p>"
        )
    for index, device in enumerate(shown):
        parts.append(_device_section(device, index + 1, summary, page, zone))
    parts.append("</section>")
    return "".join(parts)


def _device_section(
    device: DeviceSummary, number: int, summary: ReportSummary, page: _Page, zone: ZoneInfo
) -> str:
    facts = (
        f"{kwh(device.energy_kwh)} kWh · {money(device.cost)} {summary.currency} · coverage"
        f" {percent(device.coverage)} · {device.days_with_data} of {len(summary.days)} days with"
        f" data · peak {_power(device.peak_power_w)} · {len(device.anomalies)} flagged windows"
    )
    partial = sum(1 for point in device.daily if point.from_hours)
    parts = [
        f'<section class="device" id="device-{number}">',
        f"<h3>{number}. {_e(device.device_id)}</h3>",
        f'<p class="note">{_e(facts)}</p>',
    ]
    if partial:
        parts.append(
            f'<p class="note">{partial} day(s) without a closed day window were summed from'
            " their hour windows.</p>"
        )
    parts.append(
        _charts(
            device.daily,
            device.hourly_profile,
            summary,
            page,
            _short(device.device_id),
            _DEVICE_FRAME,
        )
    )
    if device.anomalies:
        shown = device.anomalies[:MAX_DEVICE_ANOMALY_ROWS]
        parts.append(f"<h4>Flagged windows ({len(device.anomalies)})</h4>")
        parts.append(_anomaly_table(shown, zone, with_device=False))
    parts.append("</section>")
    return "".join(parts)


def _method_notes(summary: ReportSummary) -> str:
    return (
        '<section id="notes"><h2>How these numbers are made</h2><ul class="note">'
        f"<li>Days are local days in {_e(summary.timezone)} (23 or 25 hours long on daylight"
        " saving changes). Daily figures are the stored day windows; a day without one (for"
        " example today, before it closes) is the sum of its hour windows.</li>"
        "<li>Totals are the sums of the daily figures; costs are exact decimal sums, shown"
        f" rounded to cents, in {_e(summary.currency)}.</li>"
        "<li>Coverage is the share of the period's seconds covered by readings; days without"
        " data count as zero.</li>"
        "<li>The hourly profile is the mean energy of a device's hour windows per local hour of"
        " day; for all devices it is the sum of the devices' profiles.</li>"
        "<li>Anomaly scores come from the online detector (0..1); a window is flagged when the"
        " detector marked it.</li></ul></section>"
    )
