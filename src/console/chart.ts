// A small SVG line chart: a few series over time, the y axis from zero to the largest
// value, drawn with DOM calls only (no markup strings).
const SVG = 'http://www.w3.org/2000/svg';

export interface Series {
  label: string;
  /** A CSS class that colours the line and its legend entry. */
  className: string;
  points: { t: number; v: number | null }[];
}

function el<K extends keyof SVGElementTagNameMap>(
  name: K,
  attrs: Record<string, string | number>,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

export class LineChart {
  readonly svg: SVGSVGElement;
  private readonly width = 600;
  private readonly height = 180;
  private readonly pad = { left: 64, right: 8, top: 8, bottom: 20 };

  constructor(
    parent: HTMLElement,
    title: string,
    private readonly format: (v: number) => string,
    private readonly windowMs = 5 * 60_000,
  ) {
    this.svg = el('svg', {
      viewBox: `0 0 ${this.width} ${this.height}`,
      role: 'img',
      class: 'chart',
    });
    const label = el('title', {});
    label.textContent = title;
    this.svg.append(label);
    parent.append(this.svg);
  }

  draw(series: Series[], now: number): void {
    const { width, height, pad } = this;
    const title = this.svg.querySelector('title');
    this.svg.replaceChildren(...(title ? [title] : []));
    const values = series.flatMap((s) => s.points.map((p) => p.v ?? 0));
    const max = Math.max(...values, 0) || 1;
    const x = (t: number) =>
      pad.left + ((t - (now - this.windowMs)) / this.windowMs) * (width - pad.left - pad.right);
    const y = (v: number) => height - pad.bottom - (v / max) * (height - pad.top - pad.bottom);
    for (const frac of [0, 0.5, 1]) {
      const yy = y(max * frac);
      this.svg.append(
        el('line', { x1: pad.left, x2: width - pad.right, y1: yy, y2: yy, class: 'grid' }),
      );
      const tick = el('text', { x: pad.left - 6, y: yy + 4, 'text-anchor': 'end', class: 'axis' });
      tick.textContent = this.format(max * frac);
      this.svg.append(tick);
    }
    for (const [text, t, anchor] of [
      [`-${Math.round(this.windowMs / 60_000)} min`, now - this.windowMs, 'start'],
      ['now', now, 'end'],
    ] as const) {
      const label = el('text', { x: x(t), y: height - 4, 'text-anchor': anchor, class: 'axis' });
      label.textContent = text;
      this.svg.append(label);
    }
    let legendX = pad.left + 8;
    for (const s of series) {
      // A gap (null) breaks the line; a lone point is drawn as a dot.
      const segments: string[][] = [[]];
      for (const p of s.points) {
        if (p.t < now - this.windowMs) continue;
        if (p.v === null) segments.push([]);
        else segments.at(-1)?.push(`${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      }
      for (const seg of segments) {
        if (seg.length > 1) {
          this.svg.append(el('polyline', { points: seg.join(' '), class: `line ${s.className}` }));
        } else if (seg.length === 1) {
          const [cx, cy] = (seg[0] as string).split(',');
          this.svg.append(
            el('circle', { cx: cx ?? 0, cy: cy ?? 0, r: 2.5, class: `dot ${s.className}` }),
          );
        }
      }
      const legend = el('text', { x: legendX, y: pad.top + 12, class: `legend ${s.className}` });
      legend.textContent = s.label;
      this.svg.append(legend);
      legendX += 14 + s.label.length * 7;
    }
  }
}
