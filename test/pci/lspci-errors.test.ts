import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildHost } from '../../src/pci/host.ts';
import { LspciError, parseLspci, type LspciErrorKind } from '../../src/pci/lspci/index.ts';
import { dump, fixture } from './lspci-helpers.ts';

/** Run parseLspci expecting an LspciError; returns it. */
function failure(text: string, source?: string): LspciError {
  try {
    parseLspci(text, source);
  } catch (e) {
    if (e instanceof LspciError) return e;
    throw new Error(`expected an LspciError, got ${String(e)}`);
  }
  throw new Error('expected parseLspci to fail');
}

function expectFailure(text: string, kind: LspciErrorKind, line: number | undefined): LspciError {
  const e = failure(text);
  expect({ kind: e.kind, line: e.line }).toEqual({ kind, line });
  if (line !== undefined) expect(e.message).toContain(`line ${line}:`);
  return e;
}

const HOST = '00:00.0 Host bridge [0600]: Intel Corporation Device [8086:3e30] (rev 0d)';
const PORT = '00:1c.0 PCI bridge [0604]: Intel Corporation Device [8086:a338] (rev f0) (prog-if 00 [Normal decode])';

describe('parseLspci errors', () => {
  it('empty input', () => {
    expectFailure('', 'empty', undefined);
    expect(expectFailure(' \n\n\t\n', 'empty', undefined).message).toMatch(/sudo lspci -vvnn/);
  });

  it('garbage: no device header at all', () => {
    expectFailure('hello world\nthis is not lspci\n', 'garbage', 1);
    expectFailure('\n\n{"devices": []}\n', 'garbage', 3);
    expectFailure('\tControl: I/O+ Mem+\n', 'garbage', 1);
    // Only error messages: nothing left after they are cut out.
    expectFailure('\npcilib: Cannot open /proc/bus/pci\n', 'garbage', 2);
  });

  it('garbage: a non-device line where a header is expected', () => {
    const e = expectFailure(dump(HOST, '>Control: I/O- Mem+', '>IOMMU group: 0', '', '$ sudo lspci -vvnn', PORT, '>IOMMU group: 1'), 'garbage', 5);
    expect(e.message).toContain('$ sudo lspci -vvnn');
  });

  it('garbage: lspci without -nn, and lspci -nn without -vv', () => {
    expect(expectFailure('00:00.0 Host bridge: Intel Corporation 8th Gen Core Processor Host Bridge\n\tControl: I/O-\n', 'garbage', 1).message).toMatch(/-nn/);
    expect(expectFailure(dump(HOST, PORT, '00:1f.0 ISA bridge [0601]: Intel Corporation Device [8086:a305] (rev 10)'), 'garbage', 1).message).toMatch(/-vvnn/);
  });

  it('truncated: ACSCap without ACSCtl at the end', () => {
    const e = expectFailure(fixture('truncated-acs.txt'), 'truncated', 21);
    expect(e.message).toMatch(/00:1c\.0.*Access Control Services.*cut short/);
  });

  it('truncated: a header with nothing under it, or a header cut mid-line', () => {
    expectFailure(dump(HOST, '>Control: I/O- Mem+', '>IOMMU group: 0', '', PORT, ''), 'truncated', 5);
    expectFailure(dump(HOST, '>Control: I/O- Mem+', '', '00:1f.3 Audio device [0403]: Intel Corp'), 'truncated', 4);
    expectFailure(dump(HOST, '>Control: I/O- Mem+', '', '00:1f'), 'truncated', 4);
  });

  it('truncated: the last line visibly cut mid-way (unclosed bracket, a field with no value), with no final newline', () => {
    const port = [PORT, '>IOMMU group: 1', '>Bus: primary=00, secondary=01, subordinate=01, sec-latency=0'];
    expectFailure(`${dump(HOST, '>IOMMU group: 0', '', ...port, '>Capabilities: [40] Express (v2) Root Port (Slo')}`.trimEnd(), 'truncated', 7);
    expectFailure(`${dump(HOST, '>IOMMU group: 0', '', ...port, '>Capabilities: [40')}`.trimEnd(), 'truncated', 7);
    expectFailure(`${dump(HOST, '>IOMMU group: 0', '', ...port, '>Kernel driver in use:')}`.trimEnd(), 'truncated', 7);
  });

  it('a dump that only lacks its final blank line imports, with a warning naming the last device', () => {
    const imp = parseLspci(`${dump(HOST, '>IOMMU group: 0', '', PORT, '>IOMMU group: 1', '>Bus: primary=00, secondary=01, subordinate=01, sec-latency=0')}`.trimEnd(), 'x.txt');
    expect(imp.warnings.join('\n')).toMatch(/does not end with the blank line .* 00:1c\.0's record is incomplete/);
  });

  it('truncated: cut mid-token, after the SR-IOV counts, or right after a capability header', () => {
    const port = [PORT, '>IOMMU group: 1', '>Bus: primary=00, secondary=01, subordinate=01, sec-latency=0',
      '>Capabilities: [40] Express (v2) Root Port (Slot+), MSI 00', '>>DevCap:\tMaxPayload 256 bytes, PhantFunc 0'];
    expectFailure(dump(...port, '>Capabilities: [140 v1] Access Control Services',
      '>>ACSCap:\tSrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-',
      '>>ACSCtl:\tSrcValid+ TransBlk- ReqRe'), 'truncated', 8);
    expectFailure(dump(...port, '>Capabilities: [160 v1] Single Root I/O Virtualization (SR-IOV)',
      '>>IOVCtl:\tEnable+ Migration- Interrupt- MSE+ ARIHierarchy+',
      '>>Initial VFs: 8, Total VFs: 8, Number of VFs: 2, Function Dependency Link: 00'), 'truncated', 8);
    expectFailure(dump(...port, '>Capabilities: [140 v1] Access Control Services'), 'truncated', 6);
  });

  it('non-root: names the first <access denied> line, what is lost, and the fix', () => {
    const e = expectFailure(fixture('nonroot.txt'), 'non-root', 19);
    expect(e.message).toContain('00:01.2');
    expect(e.message).toMatch(/ACS/);
    expect(e.message).toMatch(/port types/);
    expect(e.message).toMatch(/groups cannot be computed/);
    expect(e.message).toContain('sudo lspci -vvnn');
  });

  it('invalid: a function listed twice, or a value the host schema refuses', () => {
    expect(expectFailure(dump(HOST, '>IOMMU group: 0', '', HOST, '>IOMMU group: 0'), 'invalid', 4).message).toMatch(/00:00\.0 is listed twice/);
    const pf = [
      '01:00.0 Ethernet controller [0200]: Intel Corporation Device [8086:1521] (rev 01)',
      '>IOMMU group: 3',
      '>Capabilities: [a0] Express (v2) Endpoint, MSI 00',
      '>>DevCap:\tMaxPayload 512 bytes, PhantFunc 0',
      '>Capabilities: [160 v1] Single Root I/O Virtualization (SR-IOV)',
      '>>IOVCtl:\tEnable- Migration- Interrupt- MSE- ARIHierarchy-',
      '>>Initial VFs: 8, Total VFs: 99999, Number of VFs: 0, Function Dependency Link: 00',
      '>>VF offset: 128, stride: 4, Device ID: 1520',
      '>Kernel driver in use: igb',
    ];
    const e = expectFailure(dump(HOST, '>IOMMU group: 0', '', ...pf), 'invalid', 4);
    expect(e.message).toMatch(/01:00\.0.*sriov\.totalVfs/);
  });

  it('prefixes messages with the source when given', () => {
    expect(failure('nonsense', 'dumps/box.txt').message).toMatch(/^dumps\/box\.txt: line 1: /);
  });
});

describe('parseLspci never throws anything but LspciError, and what it imports builds', () => {
  const corpus = ['amd-switch.txt', 'intel-domains.txt', 'sriov.txt', 'spliced.txt'].map(fixture);

  const importOrError = (text: string): void => {
    let result;
    try {
      result = parseLspci(text);
    } catch (e) {
      expect(e).toBeInstanceOf(LspciError);
      // The safety net for our own bugs must never be what caught it.
      expect((e as LspciError).message).not.toContain('could not read the dump here');
      return;
    }
    expect(() => buildHost(result.spec)).not.toThrow();
  };

  it('on dumps cut at any point', () => {
    fc.assert(fc.property(fc.constantFrom(...corpus), fc.double({ min: 0, max: 1, noNaN: true }), (text, at) => {
      importOrError(text.slice(0, Math.floor(text.length * at)));
    }), { numRuns: 300 });
  });

  it('on dumps with lines deleted, repeated or mangled', () => {
    const edit = fc.record({
      at: fc.double({ min: 0, max: 1, noNaN: true }),
      count: fc.integer({ min: 1, max: 12 }),
      op: fc.constantFrom('delete', 'repeat', 'mangle', 'indent', 'dedent'),
      junk: fc.string({ maxLength: 12 }),
    });
    fc.assert(fc.property(fc.constantFrom(...corpus), fc.array(edit, { minLength: 1, maxLength: 4 }), (text, edits) => {
      const lines = text.split('\n');
      for (const e of edits) {
        const i = Math.floor(lines.length * e.at);
        const span = lines.slice(i, i + e.count);
        if (e.op === 'delete') lines.splice(i, e.count);
        else if (e.op === 'repeat') lines.splice(i, 0, ...span);
        else if (e.op === 'indent') lines.splice(i, span.length, ...span.map((l) => `\t${l}`));
        else if (e.op === 'dedent') lines.splice(i, span.length, ...span.map((l) => l.replace(/^\t/, '')));
        else lines.splice(i, span.length, ...span.map((l) => l.slice(0, l.length >> 1) + e.junk + l.slice(l.length >> 1)));
      }
      importOrError(lines.join('\n'));
    }), { numRuns: 300 });
  });

  it('on arbitrary text made of lspci-like fragments', () => {
    const fragment = fc.constantFrom(
      HOST, PORT, '\tIOMMU group: 7', '\tBus: primary=00, secondary=01, subordinate=00, sec-latency=0',
      '\tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00', '\tCapabilities: [fff v1] Access Control Services',
      '\t\tACSCap:\tSrcValid+ TransBlk+', '\t\tACSCtl:\tSrcValid+', '\tRegion 5: Memory at ffffffffffffffff (64-bit, prefetchable) [size=3M]',
      '\tCapabilities: [ff0 v1] Single Root I/O Virtualization (SR-IOV)', '\t\tInitial VFs: 1, Total VFs: 9, Number of VFs: 9, Function',
      '\t\tVF offset: 0, stride: 0, Device ID: a338', '\t\tPASIDCap: Exec+ Priv+, Max PASID Width: 1f', 'pcilib: oops', '',
      '\tCapabilities: <access denied>', '\tCapabilities: [30] Express (v9) Unknown type 15, MSI 00',
    );
    fc.assert(fc.property(fc.array(fc.oneof(fragment, fc.string({ maxLength: 20 })), { maxLength: 30 }), (lines) => {
      importOrError(lines.join('\n'));
    }), { numRuns: 300 });
  });
});
