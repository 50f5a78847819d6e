import { timeMs, type BenchDef } from './harness.ts';
import { parseLspci } from '../src/pci/lspci/index.ts';

// A synthetic `lspci -vvnn` dump of about 100 KB: root ports, each with an NVMe drive behind it,
// written the way pciutils 3.7+ prints them (tabs, capability details, IOMMU groups).

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');

function rootPort(slot: number, fn: number, bus: number, group: number): string {
  return `00:${hex2(slot)}.${fn} PCI bridge [0604]: Intel Corporation Device [8086:7ab8] (rev 11) (prog-if 00 [Normal decode])
\tControl: I/O+ Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+
\tStatus: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-
\tLatency: 0, Cache Line Size: 64 bytes
\tInterrupt: pin A routed to IRQ 122
\tIOMMU group: ${group}
\tBus: primary=00, secondary=${hex2(bus)}, subordinate=${hex2(bus)}, sec-latency=0
\tI/O behind bridge: [disabled]
\tMemory behind bridge: 80000000-800fffff [size=1M]
\tPrefetchable memory behind bridge: [disabled]
\tSecondary status: 66MHz- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- <SERR- <PERR-
\tBridgeCtl: Parity- SERR+ NoISA- VGA- VGA16+ MAbort- >Reset- FastB2B-
\t\tPriDiscTmr- SecDiscTmr- DiscTmrStat- DiscTmrSERREn-
\tCapabilities: [40] Express (v2) Root Port (Slot+), MSI 00
\t\tDevCap:\tMaxPayload 256 bytes, PhantFunc 0
\t\t\tExtTag- RBE+
\t\tDevCtl:\tCorrErr+ NonFatalErr+ FatalErr+ UnsupReq+
\t\t\tRlxdOrd- ExtTag- PhantFunc- AuxPwr- NoSnoop-
\t\t\tMaxPayload 256 bytes, MaxReadReq 128 bytes
\t\tLnkCap:\tPort #1, Speed 8GT/s, Width x4, ASPM L1, Exit Latency L1 <64us
\t\t\tClockPM- Surprise- LLActRep+ BwNot+ ASPMOptComp+
\t\tLnkSta:\tSpeed 8GT/s, Width x4
\t\t\tTrErr- Train- SlotClk+ DLActive+ BWMgmt+ ABWMgmt-
\t\tDevCap2: Completion Timeout: Range ABC, TimeoutDis+ NROPrPrP- LTR+
\t\t\t 10BitTagComp- 10BitTagReq- OBFF Not Supported, ExtFmt+ EETLPPrefix+, MaxEETLPPrefixes 2
\t\t\t FRS- LN System CLS Not Supported, TPHComp- ExtTPHComp- ARIFwd+
\t\tDevCtl2: Completion Timeout: 50us to 50ms, TimeoutDis- LTR+ OBFF Disabled, ARIFwd-
\t\t\t AtomicOpsCtl: ReqEn- EgressBlck-
\tCapabilities: [80] MSI: Enable+ Count=1/1 Maskable- 64bit-
\t\tAddress: fee00278  Data: 0000
\tCapabilities: [a0] Power Management version 3
\t\tFlags: PMEClk- DSI- D1- D2- AuxCurrent=0mA PME(D0+,D1-,D2-,D3hot+,D3cold+)
\t\tStatus: D0 NoSoftRst- PME-Enable- DSel=0 DScale=0 PME-
\tCapabilities: [100 v1] Advanced Error Reporting
\t\tUESta:\tDLP- SDES- TLP- FCP- CmpltTO- CmpltAbrt- UnxCmplt- RxOF- MalfTLP- ECRC- UnsupReq- ACSViol-
\t\tUEMsk:\tDLP- SDES- TLP- FCP- CmpltTO- CmpltAbrt- UnxCmplt- RxOF- MalfTLP- ECRC- UnsupReq- ACSViol-
\t\tCESta:\tRxErr- BadTLP- BadDLLP- Rollover- Timeout- AdvNonFatalErr-
\tCapabilities: [220 v1] Access Control Services
\t\tACSCap:\tSrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-
\t\tACSCtl:\tSrcValid+ TransBlk- ReqRedir+ CmpltRedir+ UpstreamFwd+ EgressCtrl- DirectTrans-
\tKernel driver in use: pcieport

`;
}

function nvme(bus: number, group: number): string {
  return `${hex2(bus)}:00.0 Non-Volatile memory controller [0108]: Samsung Electronics Co Ltd NVMe SSD Controller SM981/PM981/PM983 [144d:a808] (prog-if 02 [NVM Express])
\tSubsystem: Samsung Electronics Co Ltd SSD 970 EVO/PRO [144d:a801]
\tControl: I/O- Mem+ BusMaster+ SpecCycle- MemWINV- VGASnoop- ParErr- Stepping- SERR- FastB2B- DisINTx+
\tStatus: Cap+ 66MHz- UDF- FastB2B- ParErr- DEVSEL=fast >TAbort- <TAbort- <MAbort- >SERR- <PERR- INTx-
\tLatency: 0, Cache Line Size: 64 bytes
\tInterrupt: pin A routed to IRQ 16
\tIOMMU group: ${group}
\tRegion 0: Memory at 80000000 (64-bit, non-prefetchable) [size=16K]
\tCapabilities: [40] Power Management version 3
\t\tFlags: PMEClk- DSI- D1- D2- AuxCurrent=0mA PME(D0-,D1-,D2-,D3hot-,D3cold-)
\tCapabilities: [70] Express (v2) Endpoint, MSI 00
\t\tDevCap:\tMaxPayload 256 bytes, PhantFunc 0, Latency L0s unlimited, L1 unlimited
\t\t\tExtTag+ AttnBtn- AttnInd- PwrInd- RBE+ FLReset+ SlotPowerLimit 0W
\t\tLnkSta2: Current De-emphasis Level: -6dB, EqualizationComplete+ EqualizationPhase1+
\t\t\t EqualizationPhase2+ EqualizationPhase3+ LinkEqualizationRequest-
\t\t\t Retimer- 2Retimers- CrosslinkRes: Upstream Port
\tCapabilities: [b0] MSI-X: Enable+ Count=33 Masked-
\t\tVector table: BAR=0 offset=00003000
\tCapabilities: [100 v2] Advanced Error Reporting
\t\tUESta:\tDLP- SDES- TLP- FCP- CmpltTO- CmpltAbrt- UnxCmplt- RxOF- MalfTLP- ECRC- UnsupReq- ACSViol-
\tCapabilities: [148 v1] Device Serial Number 00-00-00-00-00-00-00-00
\tCapabilities: [168 v1] Alternative Routing-ID Interpretation (ARI)
\t\tARICap:\tMFVC- ACS-, Next Function: 0
\t\tARICtl:\tMFVC- ACS-, Function Group: 0
\tKernel driver in use: nvme
\tKernel modules: nvme

`;
}

/** Root ports on bus 00 (distinct devfns), one drive behind each on its own bus, until ~100 KB. */
export function syntheticDump(bytes: number): string {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes && i < 0xfe; i++) {
    const bus = i + 1;
    for (const part of [rootPort(i >> 3, i & 7, bus, 2 * i), nvme(bus, 2 * i + 1)]) {
      parts.push(part);
      size += part.length;
    }
  }
  return parts.join('');
}

export const benches: BenchDef[] = [
  {
    name: 'lspci-parse-100k',
    unit: 'ms',
    description: 'parseLspci on a ~100 KB synthetic lspci -vvnn dump (root ports and NVMe drives), best of 5 runs per sample; target well under 10 ms',
    samples: 15,
    setup: () => {
      const text = syntheticDump(100 * 1024);
      // Warm the JIT on the same input: a CLI parses once, but the figure tracks the parser, not V8's tiers.
      for (let i = 0; i < 20; i++) parseLspci(text);
      // Best of 5 per sample: on a shared machine a preempted run measures the scheduler, not the parser.
      return () => Math.min(...Array.from({ length: 5 }, () => timeMs(() => { parseLspci(text); })));
    },
  },
];
