// Credentials and resource limits: the capabilities and rlimits the IOMMU stack consults (CAP_IPC_LOCK
// bypasses RLIMIT_MEMLOCK, CAP_SYS_RESOURCE guards iommufd's RLIMIT_MODE and raising hard limits,
// CAP_SYS_ADMIN guards privileged VFIO/iommufd paths), with Linux's names and defaults.

export const CAPABILITIES = ['CAP_IPC_LOCK', 'CAP_SYS_RESOURCE', 'CAP_SYS_ADMIN', 'CAP_SYS_RAWIO', 'CAP_DAC_OVERRIDE'] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** RLIM_INFINITY. */
export const RLIM_INFINITY = Number.POSITIVE_INFINITY;

export type RlimitResource = 'RLIMIT_MEMLOCK' | 'RLIMIT_NOFILE';

/** A resource limit: `soft` (rlim_cur) is enforced, `hard` (rlim_max) is the ceiling for soft. */
export interface Rlimit {
  readonly soft: number;
  readonly hard: number;
}

/**
 * Defaults of a modern distribution: RLIMIT_MEMLOCK 8 MiB (MLOCK_LIMIT since Linux 5.16), RLIMIT_NOFILE
 * 1024 soft / 4096 hard (INR_OPEN_CUR / INR_OPEN_MAX).
 */
export const DEFAULT_RLIMITS: Readonly<Record<RlimitResource, Rlimit>> = {
  RLIMIT_MEMLOCK: { soft: 8 * 2 ** 20, hard: 8 * 2 ** 20 },
  RLIMIT_NOFILE: { soft: 1024, hard: 4096 },
};

const validLimit = (n: number): boolean => n === RLIM_INFINITY || (Number.isSafeInteger(n) && n >= 0);

/** do_prlimit()'s checks: EINVAL for soft > hard, EPERM for a raised hard limit without CAP_SYS_RESOURCE. */
export function checkNewRlimit(old: Rlimit, next: Rlimit, capSysResource: boolean): 'EINVAL' | 'EPERM' | null {
  if (!validLimit(next.soft) || !validLimit(next.hard) || next.soft > next.hard) return 'EINVAL';
  if (next.hard > old.hard && !capSysResource) return 'EPERM';
  return null;
}
