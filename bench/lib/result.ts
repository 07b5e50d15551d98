// The shape of one benchmark's recorded result (bench/results/<name>.json) and how it is written.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MachineInfo } from './machine.js';

export interface Figure {
  value: number | null;
  unit: string;
  description: string;
}

export interface TargetCheck {
  description: string;
  /** Key in figures or ratios. */
  figure: string;
  op: '>=' | '<=';
  value: number;
  met: boolean | null;
}

export interface BenchResult {
  name: string;
  title: string;
  /** measured, or not-available when the feature it measures has not landed yet. */
  status: 'measured' | 'not-available';
  command: string;
  commit: string;
  date: string;
  quick: boolean;
  machine: MachineInfo;
  duration_s: number;
  figures: Record<string, Figure>;
  baseline: { description: string; figures: Record<string, Figure> };
  /** Picket's figure divided by the baseline's, measured in the same run. */
  ratios: Record<string, Figure>;
  targets: TargetCheck[];
  /** What limits the figure, as observed. */
  limits: string[];
  notes: string[];
}

export function checkTarget(description: string, figure: string, op: '>=' | '<=', value: number, result: Pick<BenchResult, 'figures' | 'ratios'>): TargetCheck {
  const v = result.figures[figure]?.value ?? result.ratios[figure]?.value ?? null;
  return { description, figure, op, value, met: v === null ? null : op === '>=' ? v >= value : v <= value };
}

export function writeResult(dir: string, result: BenchResult): string {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${result.name}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  return file;
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
