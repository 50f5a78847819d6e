import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkObservedGroups } from '../../src/pci/groups/check.ts';
import { parseLspci } from '../../src/pci/lspci/index.ts';

// The real dumps beside the clone (../shared/fixtures/lspci) are ground truth: every device's group must
// come out as the source kernel reported it. Skipped where the folder is absent.
const dir = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/fixtures/lspci');
const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.txt')).sort() : [];

describe.skipIf(files.length === 0)('real lspci dumps with observed groups', () => {
  it.each(files)('%s: the partition agrees on every device, and the numbering is reproduced', (file) => {
    const imp = parseLspci(readFileSync(join(dir, file), 'utf8'), file);
    const report = checkObservedGroups(imp.spec);
    expect(report.mismatches).toEqual([]);
    expect(report.coverageMismatches).toEqual([]);
    expect(report.partitionAgrees).toBe(true);
    if (!report.numberingAgrees) expect(report.numberingReproduced).toBe(true);
    expect(report.explainingCmdline).toBeUndefined();
  });
});
