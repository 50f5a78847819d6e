// The dma-buf sharing framework (drivers/dma-buf/dma-buf.c), the part importers like iommufd use: an
// exporter's buffer behind an anonymous "[dmabuf]" file (dma_buf_export() + dma_buf_fd()), dynamic
// attachments whose importers are told through move_notify when the exporter invalidates its mappings
// (dma_buf_invalidate_mappings(), how a revoke reaches them), and dma_buf_get() on an fd. The exporter
// owns the memory; the file's last reference gives it back through the exporter's release().

import { fail, ok, type Result } from '../errno.ts';
import type { KernelFile, OpenFile } from '../process/file.ts';
import type { Process } from '../process/process.ts';

/** struct dma_buf_ops, the part modelled. The exporter object's identity is Linux's `dmabuf->ops`. */
export interface DmaBufExporter {
  /**
   * The buffer's memory as one PFN per page, for an importer that maps physical addresses (the
   * phys-vec mapping iommufd asks for). ENODEV while the exporter has revoked it.
   */
  mapPhys(buf: DmaBuf): Result<Uint32Array>;
  /** ops->release: the file's last reference is gone. */
  release(buf: DmaBuf): void;
}

/** struct dma_buf_attach_ops of a dynamic importer. */
export interface DmaBufImporter {
  /** move_notify: whatever the importer got from mapPhys() must no longer be used. */
  moveNotify(): void;
}

/** struct dma_buf_attachment. */
export interface DmaBufAttachment {
  readonly dmabuf: DmaBuf;
  readonly importer: DmaBufImporter;
}

export class DmaBuf implements KernelFile {
  readonly kind = 'dmabuf';
  private readonly attachments = new Set<DmaBufAttachment>();
  private dead = false;

  /**
   * dma_buf_export(): `size` bytes (page multiple) of `exporter`'s memory. `flags` are the file flags
   * (exp_info.flags, e.g. O_RDWR | O_CLOEXEC) kept as the file's f_flags.
   */
  constructor(readonly exporter: DmaBufExporter, readonly size: number, readonly flags: number) {}

  get released(): boolean { return this.dead; }
  get attachmentCount(): number { return this.attachments.size; }

  /** dma_buf_dynamic_attach(). */
  attach(importer: DmaBufImporter): DmaBufAttachment {
    if (this.dead) throw new Error('dma_buf_attach on a released dma-buf');
    const a = { dmabuf: this, importer };
    this.attachments.add(a);
    return a;
  }

  /** dma_buf_detach(). */
  detach(a: DmaBufAttachment): void {
    if (!this.attachments.delete(a)) throw new Error('dma_buf_detach of an attachment that is not attached');
  }

  /** dma_buf_invalidate_mappings() (was dma_buf_move_notify()): every dynamic importer is told. */
  invalidateMappings(): void {
    for (const a of [...this.attachments]) a.importer.moveNotify();
  }

  release(): void {
    if (this.dead) return;
    // Every attachment holds a file reference, so none can be left at the last fput().
    if (this.attachments.size !== 0) throw new Error(`dma-buf released with ${this.attachments.size} attachments`);
    this.dead = true;
    this.exporter.release(this);
  }
}

/**
 * dma_buf_get(fd) without taking the reference (callers that keep the buffer call get() on the result):
 * EBADF for a closed fd, EINVAL for a file that is not a dma-buf.
 */
export function dmaBufGet(proc: Process, fd: number): Result<OpenFile<DmaBuf>> {
  const f = proc.fds.get(fd);
  if (!f.ok) return fail('EBADF', `fd ${fd} is not open`);
  if (!(f.value.file instanceof DmaBuf)) return fail('EINVAL', `fd ${fd} is a ${f.value.file.kind}, not a dma-buf`);
  return ok(f.value as OpenFile<DmaBuf>);
}
