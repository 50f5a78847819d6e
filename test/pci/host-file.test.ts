import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HostFileError, loadHostFile, loadHostText } from '../../src/pci/host-file.ts';

function errorOf(fn: () => unknown): HostFileError {
  try {
    fn();
  } catch (err) {
    if (err instanceof HostFileError) return err;
    throw err;
  }
  throw new Error('expected a HostFileError');
}

const yamlError = (text: string, filename = 'host.yaml'): HostFileError => errorOf(() => loadHostText(text, filename));
const where = (e: HostFileError): Array<[number, number, string]> => e.issues.map((i) => [i.line, i.column, i.path]);

const VALID = `name: tiny
functions:
  - address: 00:01.0
    id: 8086:352a
    class: 0x0604
    bridge: { secondary: 0x01, subordinate: 0x01 }
    express: { type: root-port }
    acs: { cap: [SV, RR, CR, UF] }
  - address: 01:00.0
    id: "144d:a80a"
    class: "0108"
    bars: [{ index: 0, type: mem64, base: 0x84000000, size: 16K }]
`;

describe('loadHostText: YAML', () => {
  it('parses and validates, applying the schema defaults', () => {
    const spec = loadHostText(VALID, 'tiny.yaml');
    expect(spec.name).toBe('tiny');
    expect(spec.functions).toHaveLength(2);
    expect(spec.functions[0]?.acs).toEqual({ cap: 0x1d, ctl: 0, offset: undefined });
    expect(spec.functions[1]?.class).toBe(0x0108);
    expect(spec.functions[1]?.bars[0]).toMatchObject({ base: 0x84000000, size: 16384, prefetchable: false });
    expect(spec.platform.iommu).toBe('intel');
  });

  it('reports a syntax error at its position', () => {
    const e = yamlError('name: x\nfunctions:\n  - address: 00:01.0\n     id: x\n');
    expect(e).toBeInstanceOf(HostFileError);
    expect([e.line, e.column, e.path]).toEqual([3, 14, '']);
    expect(e.message.split('\n')[0]).toBe('host.yaml:3:14: Nested mappings are not allowed in compact mappings');
    expect(yamlError('name: x\nfunctions:\n  - { address: 00:01.0\n').line).toBe(4); // unclosed: reported at the end
  });

  it('reports a duplicate mapping key at the second key', () => {
    const e = yamlError('name: x\nname: y\nfunctions: []\n');
    expect([e.line, e.column]).toEqual([2, 1]);
    expect(e.message).toMatch(/^host\.yaml:2:1: .*unique/);
  });

  it('points a type error at the offending value', () => {
    const e = yamlError(VALID.replace('class: 0x0604', 'class: [6, 4]'));
    expect(where(e)).toEqual([[5, 12, 'functions.0.class']]);
    expect(e.message).toBe('host.yaml:5:12: functions.0.class: expected number or string, got a list');
  });

  it('points an unknown field at its key', () => {
    const e = yamlError(VALID.replace('    express: { type: root-port }', '    express: { type: root-port, slots: true }'));
    expect(where(e)).toEqual([[7, 33, 'functions.0.express']]);
    expect(e.issues[0]?.message).toBe('unknown field "slots"');
  });

  it('points a missing required field at the mapping that lacks it', () => {
    const e = yamlError(VALID.replace('    id: "144d:a80a"\n', ''));
    expect(where(e)).toEqual([[9, 5, 'functions.1.id']]);
    expect(e.issues[0]?.message).toBe('missing required field "id"');
  });

  it('reports the closest branch of a union: a bad ACS bit name, at the list item', () => {
    const e = yamlError(VALID.replace('[SV, RR, CR, UF]', '[SV, RR, XX, UF]'));
    expect(where(e)).toEqual([[8, 26, 'functions.0.acs.cap.2']]);
    expect(e.issues[0]?.message).toMatch(/^expected one of "SV"\|"TB"/);
  });

  it('reports refinement failures with the schema message', () => {
    const e = yamlError(VALID.replace('class: "0108"', 'class: "zz08"').replace('secondary: 0x01,', 'secondary: 0x100,'));
    expect(where(e)).toEqual([[6, 26, 'functions.0.bridge.secondary'], [11, 12, 'functions.1.class']]);
    expect(e.issues.map((i) => i.message)).toEqual(['bus must be at most 0xff', 'class must be hexadecimal']);
  });

  it('reports several issues, in file order, and lists the first five', () => {
    const text = `functions:
  - { address: 00:00.0, id: 8086:0001, class: 1, bogus: 1 }
  - { address: 00:01.0, id: bad, class: 1 }
  - { address: 00:02.0, id: 8086:0001, class: 1, progIf: 0x100 }
  - { address: 00:03.0, id: 8086:0001, class: 1, express: { type: router } }
  - { address: 0:0:0:0, id: 8086:0001, class: 1 }
  - { address: 00:05.0, id: 8086:0001 }
platform: { iommu: ibm }
`;
    const e = yamlError(text);
    expect(where(e)).toEqual([
      [2, 50, 'functions.0'],
      [3, 29, 'functions.1.id'],
      [4, 58, 'functions.2.progIf'],
      [5, 67, 'functions.3.express.type'],
      [6, 16, 'functions.4.address'],
      [7, 5, 'functions.5.class'],
      [8, 20, 'platform.iommu'],
    ]);
    const lines = e.message.split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[0]).toBe('host.yaml:2:50: functions.0: unknown field "bogus"');
    expect(lines[1]).toBe('host.yaml:3:29: functions.1.id: IDs are written vvvv:dddd');
    expect(lines[5]).toBe('(and 2 more)');
  });

  it('catches leading-zero numbers YAML would read as decimal where lspci meant hex', () => {
    const e = yamlError(VALID.replace('class: 0x0604', 'class: 0604'));
    expect(where(e)).toEqual([[5, 12, 'functions.0.class']]);
    expect(e.issues[0]?.message).toBe('YAML reads 0604 as the decimal number 604; write 0x0604 or quote it ("0604") for hexadecimal');
  });

  it('asks for a mapping when the file is empty or not a mapping', () => {
    expect(yamlError('').message).toBe('host.yaml:1:1: a host file must be a mapping with at least a "functions:" list');
    const list = yamlError('\n- 1\n- 2\n');
    expect([list.line, list.column]).toEqual([2, 1]);
  });
});

describe('loadHostText: semantic checks', () => {
  it('finds a duplicate address, even written differently, at the second one', () => {
    const e = yamlError(`${VALID}  - { address: "0000:01:00.0", id: 8086:0001, class: 1 }\n`);
    expect(where(e)).toEqual([[13, 16, 'functions.2.address']]);
    expect(e.issues[0]?.message).toBe('function 01:00.0 is listed twice (first as functions.1)');
  });

  it('finds a virtfnOf naming a function that does not exist', () => {
    const e = yamlError(`${VALID}  - { address: 01:00.4, id: 144d:a80b, class: 0x0108, virtfnOf: 01:00.2 }\n`);
    expect(where(e)).toEqual([[13, 65, 'functions.2.virtfnOf']]);
    expect(e.issues[0]?.message).toBe('virtfnOf names 01:00.2, which is not a physical function of this host');
  });

  it('finds bridges whose bus numbers cannot form a hierarchy', () => {
    const text = VALID.replace('secondary: 0x01, subordinate: 0x01', 'secondary: 0x00, subordinate: 0x01')
      + '  - { address: 00:02.0, id: 8086:352a, class: 0x0604, bridge: { secondary: 0x05, subordinate: 0x03 } }\n';
    const e = yamlError(text);
    expect(where(e)).toEqual([[6, 26, 'functions.0.bridge.secondary'], [13, 95, 'functions.2.bridge.subordinate']]);
    expect(e.issues.map((i) => i.message)).toEqual([
      "secondary bus 0x00 must be above the bridge's own bus 0x00",
      'subordinate bus 0x03 is below the secondary bus 0x05',
    ]);
  });

  it('finds more VFs enabled than the function has', () => {
    const text = VALID.replace('    bars: [{', '    sriov: { totalVfs: 4, numVfs: 8, vfOffset: 128, vfDevice: 0xa80b }\n    bars: [{');
    const e = yamlError(text);
    expect(where(e)).toEqual([[12, 35, 'functions.1.sriov.numVfs']]);
  });
});

describe('loadHostText: JSON', () => {
  const json = JSON.stringify({ functions: [{ address: '00:00.0', id: '8086:1521', class: '0200' }] }, null, 2);

  it('parses .json files as JSON', () => {
    expect(loadHostText(json, 'h.json').functions[0]?.class).toBe(0x0200);
    expect(loadHostText(json, 'H.JSON').functions).toHaveLength(1);
  });

  it('points schema errors at the JSON node', () => {
    const e = errorOf(() => loadHostText(json.replace('"0200"', '"zz"'), 'h.json'));
    expect(where(e)).toEqual([[6, 16, 'functions.0.class']]);
    expect(e.message).toBe('h.json:6:16: functions.0.class: class must be hexadecimal');
  });

  it('reports JSON syntax errors with a position', () => {
    const e = errorOf(() => loadHostText('{\n  "functions": [\n    {"address": "00:00.0" "id": 1}\n  ]\n}', 'h.json'));
    expect([e.line, e.column]).toEqual([3, 27]);
    expect(e.message).toMatch(/^h\.json:3:27: /);
  });

  it('is strict JSON: YAML conveniences are syntax errors', () => {
    expect(() => loadHostText('functions: []', 'h.json')).toThrow(HostFileError);
  });
});

describe('loadHostFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ioasis-host-file-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file from disk', () => {
    const path = join(dir, 'tiny.yaml');
    writeFileSync(path, VALID);
    expect(loadHostFile(path).functions).toHaveLength(2);
  });

  it('names the file in errors', () => {
    const path = join(dir, 'broken.yaml');
    writeFileSync(path, VALID.replace('class: 0x0604', 'class: true'));
    const e = errorOf(() => loadHostFile(path));
    expect(e.filename).toBe(path);
    expect(e.message).toBe(`${path}:5:12: functions.0.class: expected number or string, got the boolean true`);
  });

  it('says clearly when the file is missing or a directory', () => {
    const missing = join(dir, 'nope.yaml');
    const e = errorOf(() => loadHostFile(missing));
    expect(e.message).toBe(`${missing}: no such file`);
    expect([e.line, e.column]).toEqual([0, 0]);
    expect(errorOf(() => loadHostFile(dir)).message).toBe(`${dir}: is a directory, not a host file`);
  });
});
