// Per-user accounting (Linux's user_struct, one per real uid, found with alloc_uid() and held with
// get_uid()/free_uid()). iommufd's default USER accounting mode and io_uring charge pinned pages to
// user->locked_vm, so every process of the user shares one budget.

import { PAGE_SIZE } from '../../hw/memory/physical-memory.ts';
import { fail, ok, type Result } from '../errno.ts';

export class UserStruct {
  private locked = 0;
  private refs = 0;

  constructor(readonly uid: number, private readonly onFree: (u: UserStruct) => void) {}

  /** user->locked_vm, in pages. */
  get lockedVm(): number { return this.locked; }
  get refCount(): number { return this.refs; }

  /** get_uid(). */
  get(): this {
    this.refs++;
    return this;
  }

  /** free_uid(): the last reference removes the struct from its table. */
  put(): void {
    if (this.refs === 0) throw new Error(`free_uid of uid ${this.uid} with no references`);
    if (--this.refs === 0) this.onFree(this);
  }

  /**
   * iommufd's incr_user_locked_vm()/decr_user_locked_vm() (and io_uring's __io_account_mem()): adding fails
   * with ENOMEM when locked_vm + npages exceeds RLIMIT_MEMLOCK (rlim_cur, bytes, taken in pages) of the
   * charging task. There is no capability check here: the caller skips accounting for CAP_IPC_LOCK.
   */
  accountLockedVm(npages: number, op: 'add' | 'sub', rlimitBytes: number, bypassRlimit = false): Result {
    if (!Number.isSafeInteger(npages) || npages < 0) throw new RangeError(`bad page count ${npages}`);
    if (op === 'sub') {
      if (npages > this.locked) throw new Error(`user ${this.uid}: locked_vm would go below zero`);
      this.locked -= npages;
      return ok();
    }
    const limit = Math.floor(rlimitBytes / PAGE_SIZE);
    if (!bypassRlimit && this.locked + npages > limit) {
      return fail('ENOMEM', `user ${this.uid}: locked_vm ${this.locked} + ${npages} pages exceeds RLIMIT_MEMLOCK (${limit} pages)`);
    }
    this.locked += npages;
    return ok();
  }
}

/** The uid -> user_struct hash (uidhash_table). */
export class UserTable {
  private readonly users = new Map<number, UserStruct>();

  /** alloc_uid(): the user's struct with a new reference, created if this is the user's first. */
  get(uid: number): UserStruct {
    let u = this.users.get(uid);
    if (u === undefined) {
      u = new UserStruct(uid, (gone) => { if (this.users.get(gone.uid) === gone) this.users.delete(gone.uid); });
      this.users.set(uid, u);
    }
    return u.get();
  }

  /** find_user(): the struct if the user has one, without a new reference. */
  find(uid: number): UserStruct | undefined { return this.users.get(uid); }

  get size(): number { return this.users.size; }
}
