// IOMMU_OPTION (drivers/iommu/iommufd/main.c iommufd_option, ioas.c iommufd_ioas_option): the context's
// RLIMIT_MODE and an IOAS's HUGE_PAGES. GET returns the value in val64; only val64 changes on write-back.

import { fail, ok } from '../errno.ts';
import { getIoas, handler } from './ioas-ioctls.ts';

export const IOMMU_OPTION_RLIMIT_MODE = 0;
export const IOMMU_OPTION_HUGE_PAGES = 1;
export const IOMMU_OPTION_OP_SET = 0;
export const IOMMU_OPTION_OP_GET = 1;

export interface OptionCmd { size: number; option_id: number; op: number; __reserved: number; object_id: number; val64: bigint }

export const iommufdOption = handler<OptionCmd>((ctx, proc, cmd) => {
  if (cmd.__reserved !== 0) return fail('EOPNOTSUPP', '__reserved is not zero');
  switch (cmd.option_id) {
    case IOMMU_OPTION_RLIMIT_MODE: {
      if (cmd.object_id !== 0) return fail('EOPNOTSUPP', 'RLIMIT_MODE is a context option: object_id must be 0');
      if (cmd.op === IOMMU_OPTION_OP_GET) return ok({ val64: ctx.accountMode === 'mm' ? 1n : 0n });
      if (cmd.op !== IOMMU_OPTION_OP_SET) return fail('EOPNOTSUPP', `unknown option op ${cmd.op}`);
      if (!proc.capable('CAP_SYS_RESOURCE')) return fail('EPERM', 'setting RLIMIT_MODE needs CAP_SYS_RESOURCE');
      if (ctx.objects.size !== 0) return fail('EBUSY', 'RLIMIT_MODE can only change while the context has no objects');
      if (cmd.val64 === 0n) ctx.accountMode = 'user';
      else if (cmd.val64 === 1n) ctx.accountMode = 'mm';
      else return fail('EINVAL', `RLIMIT_MODE value ${cmd.val64} (0 = user, 1 = mm)`);
      return ok(undefined);
    }
    case IOMMU_OPTION_HUGE_PAGES: {
      const ioas = getIoas(ctx, cmd.object_id);
      if (!ioas.ok) return ioas;
      const iopt = ioas.value.iopt;
      if (cmd.op === IOMMU_OPTION_OP_GET) return ok({ val64: iopt.largePages ? 1n : 0n });
      if (cmd.op !== IOMMU_OPTION_OP_SET) return fail('EOPNOTSUPP', `unknown option op ${cmd.op}`);
      if (cmd.val64 === 0n) {
        const r = iopt.disableLargePages();
        return r.ok ? ok(undefined) : r;
      }
      if (cmd.val64 === 1n) {
        iopt.enableLargePages();
        return ok(undefined);
      }
      return fail('EINVAL', `HUGE_PAGES value ${cmd.val64} (0 or 1)`);
    }
    default:
      return fail('EOPNOTSUPP', `unknown option ${cmd.option_id}`);
  }
});
