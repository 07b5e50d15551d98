// Docs tell the truth: every server setting is in the README's configuration table with its default.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_SETTINGS } from '../src/config.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('README configuration table', () => {
  it.each(CONFIG_SETTINGS.map((s) => [s.env, s] as const))('lists %s with its flag and default', (_env, setting) => {
    const row = readme.split('\n').find((line) => line.startsWith(`| \`${setting.env}\``));
    expect(row, `README has no row for ${setting.env}`).toBeDefined();
    expect(row).toContain(`\`${setting.flag.split(' ')[0]}\``);
    if (!setting.default.startsWith('(')) expect(row).toContain(`\`${setting.default}\``);
  });
});
