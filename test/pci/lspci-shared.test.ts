import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { buildHost } from '../../src/pci/host.ts';
import { parseLspci } from '../../src/pci/lspci/index.ts';

// Real dumps shared between the projects of this workspace: read in place, never copied here.
const dir = fileURLToPath(new URL('../../../shared/fixtures/lspci', import.meta.url));
const present = existsSync(dir);
const files = present ? readdirSync(dir).filter((f) => f.endsWith('.txt')).sort() : [];
const HEADER_RE = /^(?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7] /;

describe('lspci importer on the shared real dumps', () => {
  it.skipIf(!present)('finds dumps to read', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    it(`${file}: one function per device header, and the host builds`, () => {
      const text = readFileSync(`${dir}/${file}`, 'utf8');
      const headers = text.split('\n').filter((l) => HEADER_RE.test(l)).length;
      const result = parseLspci(text, file);
      expect(result.observedGroups).toBe(true);
      expect(result.spec.functions).toHaveLength(headers);
      expect(buildHost(result.spec).topology.size).toBe(headers);
    });
  }
});
