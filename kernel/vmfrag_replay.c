// SPDX-License-Identifier: GPL-2.0
/*
 * vmfrag_replay: replays a vmfrag trace's a / f / p ops through this kernel's own vmalloc, inside a
 * window of the vmalloc range, and reports where each area went, relative to the window start.
 *
 * Input: the file named by the `path` parameter (a file in the initramfs; a string parameter is
 * capped at 1024 bytes, a trace is not), written by scripts/vmfrag_jobs/kernel_job.py. All
 * numbers little-endian:
 *
 *   header (64 bytes): "VMFRAGK1", u64 region, u64 no_guard (1: VM_NO_GUARD), u64 eager,
 *                      u64 max_align, u64 nops, u64 nslots, u64 reserved (0)
 *   op (32 bytes):     u32 kind ('a', 'f', 'p'), u32 0, u64 size, u64 align, u64 slot
 *
 * `a` asks __vmalloc_node_range() for `size` bytes aligned to `align` inside
 * [window, window + region) and keeps the result in `slot`; `f` vfree()s the slot (a slot whose
 * allocation failed is a no-op); `p` is vm_unmap_aliases(), which purges every lazily freed area.
 * With `eager` set, every `f` is followed by vm_unmap_aliases() (the trace's `lazy 0`).
 *
 * Output: /proc/vmfrag_replay, one line per op after a `begin` line and before an `end` line
 * (the grammar is in kernel/README.md; kernel_job.py parses it):
 *
 *   begin release=R version="V" window=0x.. region=N cpus=N lazy_max=N lazy_nr=found|missing
 *         eager=0|1 ops=N lazy_start=N|-          (one line)
 *   o <op> a ok <offset> <lazy_nr>       an area at window + offset (lazy_nr: N, or - when the
 *                                        symbol was not found)
 *   o <op> a fail <avail_pages> <lazy_nr>
 *   o <op> f ok|none <lazy_nr>           none: the slot's allocation had failed
 *   o <op> p ok <lazy_nr>
 *   end ops=N ns=N
 *
 * lazy_nr is the kernel's vmap_lazy_nr after the op: lazily freed pages in the whole system, not
 * only the window's (a large area's page array lives outside the window and is freed with it).
 *
 * Why the steps are ordered so:
 * - Every buffer (the input, the slots, the results) is allocated before the replay and freed
 *   only when the module is removed, so the only vmalloc traffic during the replay is the trace's
 *   own (with the page arrays of its areas above 2 MiB, which the kernel vmallocs outside the
 *   window) and nothing of ours adds to the lazy counter.
 * - vfree() schedules the lazy purge on a workqueue when the counter exceeds lazy_max_pages();
 *   the replay waits for that work after each free (flush_work(&drain_vmap_work)), so a purge the
 *   kernel decided on has happened before the next op, the same in every run.
 * - The window start is aligned to the trace's largest alignment (at least 1 GiB), so an offset
 *   aligned within the window is aligned in the kernel, as in vmfrag where offset 0 is aligned
 *   to everything. It sits 1 TiB below the top of the vmalloc range: plain vmalloc() allocates
 *   from the bottom, per-CPU areas from the very top.
 */
#include <linux/atomic.h>
#include <linux/kernel_read_file.h>
#include <linux/kprobes.h>
#include <linux/ktime.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/utsname.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vmfrag: replay a trace through the kernel's vmalloc");

static char *path = "/ops.bin";
module_param(path, charp, 0444);
MODULE_PARM_DESC(path, "the ops file (in the initramfs)");

#define VMFRAG_MAGIC "VMFRAGK1"
#define MAX_INPUT_BYTES (256UL << 20)

struct vmfrag_header {
	char magic[8];
	u64 region, no_guard, eager, max_align, nops, nslots, reserved;
};

struct vmfrag_op {
	u32 kind, zero;
	u64 size, align, slot;
};

enum { R_ALLOC_OK, R_ALLOC_FAIL, R_FREE_OK, R_FREE_NONE, R_PURGE };

struct vmfrag_result {
	u64 value;   /* offset (alloc ok) or available pages (alloc fail) */
	u64 lazy_nr; /* vmap_lazy_nr after the op, or ~0 when the symbol was not found */
	u32 what;
};

typedef void *(*vmalloc_range_fn)(unsigned long size, unsigned long align, unsigned long start,
				  unsigned long end, gfp_t gfp_mask, pgprot_t prot,
				  unsigned long vm_flags, int node, const void *caller);
typedef unsigned long (*lookup_fn)(const char *name);

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
#define VMALLOC_RANGE_SYMBOL "__vmalloc_node_range_noprof" /* memory allocation profiling, 6.10 */
#else
#define VMALLOC_RANGE_SYMBOL "__vmalloc_node_range"
#endif

static void *input;
static const struct vmfrag_header *hdr;
static const struct vmfrag_op *ops;
static void **slots;
static struct vmfrag_result *results;
static u64 done_ops, replay_ns, lazy_start;
static unsigned long window;
static atomic_long_t *lazy_nr;
static struct work_struct *drain_work;
static struct proc_dir_entry *proc_entry;

static lookup_fn find_kallsyms_lookup_name(void)
{
	struct kprobe kp = { .symbol_name = "kallsyms_lookup_name" };
	unsigned long addr;
	u32 insn;

	if (register_kprobe(&kp) < 0)
		return NULL;
	addr = (unsigned long)kp.addr;
	unregister_kprobe(&kp);
	/*
	 * With IBT (6.12) a kprobe on a function goes after its ENDBR64 (start + 4); an indirect
	 * call must land on the ENDBR64 itself.
	 */
	if (copy_from_kernel_nofault(&insn, (void *)(addr - 4), 4) == 0 && insn == 0xfa1e0ff3)
		addr -= 4;
	return (lookup_fn)addr;
}

static u64 read_lazy(void)
{
	return lazy_nr ? (u64)atomic_long_read(lazy_nr) : ~0ULL;
}

static unsigned long lazy_max(void)
{
	/* mm/vmalloc.c lazy_max_pages(): fls(online CPUs) * 32 MiB of pages */
	return fls(num_online_cpus()) * (32UL * 1024 * 1024 / PAGE_SIZE);
}

static int validate(size_t size)
{
	u64 i, allocs = 0;

	if (size < sizeof(*hdr) || memcmp(hdr->magic, VMFRAG_MAGIC, 8) != 0) {
		pr_err("vmfrag: %s is not a vmfrag ops file\n", path);
		return -EINVAL;
	}
	if (hdr->nops > (size - sizeof(*hdr)) / sizeof(*ops) ||
	    size != sizeof(*hdr) + hdr->nops * sizeof(*ops)) {
		pr_err("vmfrag: %s: %zu bytes, but the header says %llu ops\n", path, size, hdr->nops);
		return -EINVAL;
	}
	if (hdr->region == 0 || hdr->region % PAGE_SIZE || hdr->max_align < PAGE_SIZE ||
	    (hdr->max_align & (hdr->max_align - 1))) {
		pr_err("vmfrag: bad region %llu or max_align %llu\n", hdr->region, hdr->max_align);
		return -EINVAL;
	}
	for (i = 0; i < hdr->nops; i++) {
		const struct vmfrag_op *op = &ops[i];

		if (op->kind == 'a' && op->slot == allocs && op->align >= PAGE_SIZE &&
		    op->align <= hdr->max_align && !(op->align & (op->align - 1)))
			allocs++;
		else if (!(op->kind == 'f' && op->slot < allocs) && op->kind != 'p') {
			pr_err("vmfrag: %s: op %llu is malformed\n", path, i);
			return -EINVAL;
		}
	}
	if (allocs != hdr->nslots) {
		pr_err("vmfrag: %s: %llu allocations, header says %llu\n", path, allocs, hdr->nslots);
		return -EINVAL;
	}
	return 0;
}

static int place_window(void)
{
	unsigned long top = VMALLOC_END + 1 - (1UL << 40);
	unsigned long align = max_t(unsigned long, hdr->max_align, 1UL << 30);

	if (hdr->region > top - VMALLOC_START) {
		pr_err("vmfrag: region %llu does not fit below the top of the vmalloc range\n", hdr->region);
		return -ERANGE;
	}
	window = (top - hdr->region) & ~(align - 1);
	if (window < VMALLOC_START) {
		pr_err("vmfrag: no window of %llu bytes aligned to %lu in the vmalloc range\n",
		       hdr->region, align);
		return -ERANGE;
	}
	return 0;
}

static void replay(vmalloc_range_fn vmalloc_range)
{
	unsigned long vm_flags = hdr->no_guard ? VM_NO_GUARD : 0;
	u64 i, t0 = ktime_get_ns();

	for (i = 0; i < hdr->nops; i++) {
		const struct vmfrag_op *op = &ops[i];
		struct vmfrag_result *r = &results[i];

		switch (op->kind) {
		case 'a': {
			void *p = vmalloc_range(op->size, op->align, window, window + hdr->region,
						GFP_KERNEL | __GFP_NOWARN, PAGE_KERNEL, vm_flags,
						NUMA_NO_NODE, __builtin_return_address(0));
			slots[op->slot] = p;
			if (p) {
				r->what = R_ALLOC_OK;
				r->value = (unsigned long)p - window;
			} else {
				r->what = R_ALLOC_FAIL;
				r->value = si_mem_available();
			}
			break;
		}
		case 'f':
			if (slots[op->slot]) {
				vfree(slots[op->slot]);
				slots[op->slot] = NULL;
				if (hdr->eager)
					vm_unmap_aliases();
				else if (drain_work)
					flush_work(drain_work);
				r->what = R_FREE_OK;
			} else {
				r->what = R_FREE_NONE;
			}
			break;
		default:
			vm_unmap_aliases();
			r->what = R_PURGE;
			break;
		}
		r->lazy_nr = read_lazy();
		done_ops = i + 1;
		cond_resched();
	}
	replay_ns = ktime_get_ns() - t0;
}

static void *seq_start(struct seq_file *m, loff_t *pos)
{
	return *pos <= done_ops + 1 ? pos : NULL;
}

static void *seq_next(struct seq_file *m, void *v, loff_t *pos)
{
	++*pos;
	return seq_start(m, pos);
}

static void seq_stop(struct seq_file *m, void *v)
{
}

static int seq_show(struct seq_file *m, void *v)
{
	loff_t pos = *(loff_t *)v;
	const struct vmfrag_result *r;
	static const char *const op_name[] = { "a", "a", "f", "f", "p" };
	static const char *const outcome[] = { "ok", "fail", "ok", "none", "ok" };

	if (pos == 0) {
		seq_printf(m, "begin release=%s version=\"%s\" window=0x%lx region=%llu cpus=%u "
			   "lazy_max=%lu lazy_nr=%s eager=%llu ops=%llu lazy_start=",
			   init_utsname()->release, init_utsname()->version, window, hdr->region,
			   num_online_cpus(), lazy_max(), lazy_nr ? "found" : "missing", hdr->eager,
			   hdr->nops);
		if (lazy_start == ~0ULL)
			seq_puts(m, "-\n");
		else
			seq_printf(m, "%llu\n", lazy_start);
		return 0;
	}
	if (pos == done_ops + 1) {
		seq_printf(m, "end ops=%llu ns=%llu\n", done_ops, replay_ns);
		return 0;
	}
	r = &results[pos - 1];
	seq_printf(m, "o %lld %s %s", pos - 1, op_name[r->what], outcome[r->what]);
	if (r->what == R_ALLOC_OK || r->what == R_ALLOC_FAIL)
		seq_printf(m, " %llu", r->value);
	if (r->lazy_nr == ~0ULL)
		seq_puts(m, " -\n");
	else
		seq_printf(m, " %llu\n", r->lazy_nr);
	return 0;
}

static const struct seq_operations vmfrag_seq_ops = {
	.start = seq_start, .next = seq_next, .stop = seq_stop, .show = seq_show,
};

static int vmfrag_open(struct inode *inode, struct file *file)
{
	return seq_open(file, &vmfrag_seq_ops);
}

static const struct proc_ops vmfrag_proc_ops = {
	.proc_open = vmfrag_open, .proc_read = seq_read, .proc_lseek = seq_lseek,
	.proc_release = seq_release,
};

static void release_buffers(void)
{
	kvfree(results);
	kvfree(slots);
	vfree(input);
}

static int __init vmfrag_init(void)
{
	size_t size = 0;
	ssize_t n;
	lookup_fn lookup;
	vmalloc_range_fn vmalloc_range;
	int err;

	n = kernel_read_file_from_path(path, 0, &input, MAX_INPUT_BYTES, &size, READING_UNKNOWN);
	if (n < 0) {
		pr_err("vmfrag: cannot read %s: error %zd\n", path, n);
		return (int)n;
	}
	hdr = input;
	ops = (const struct vmfrag_op *)(hdr + 1);
	err = validate(size);
	if (!err)
		err = place_window();
	if (err)
		goto fail;
	lookup = find_kallsyms_lookup_name();
	vmalloc_range = lookup ? (vmalloc_range_fn)lookup(VMALLOC_RANGE_SYMBOL) : NULL;
	if (!vmalloc_range) {
		pr_err("vmfrag: cannot find %s (kallsyms_lookup_name %s)\n", VMALLOC_RANGE_SYMBOL,
		       lookup ? "found" : "not found through a kprobe");
		err = -ENOENT;
		goto fail;
	}
	lazy_nr = (atomic_long_t *)lookup("vmap_lazy_nr");
	drain_work = (struct work_struct *)lookup("drain_vmap_work");
	slots = kvcalloc(max_t(u64, hdr->nslots, 1), sizeof(*slots), GFP_KERNEL);
	results = kvcalloc(max_t(u64, hdr->nops, 1), sizeof(*results), GFP_KERNEL);
	err = -ENOMEM;
	if (!slots || !results)
		goto fail;
	proc_entry = proc_create("vmfrag_replay", 0444, NULL, &vmfrag_proc_ops);
	if (!proc_entry)
		goto fail;
	vm_unmap_aliases(); /* start with nothing lazily freed */
	lazy_start = read_lazy();
	replay(vmalloc_range);
	return 0;
fail:
	release_buffers();
	return err;
}

static void __exit vmfrag_exit(void)
{
	u64 i;

	proc_remove(proc_entry);
	for (i = 0; i < hdr->nslots; i++)
		vfree(slots[i]);
	release_buffers();
}

module_init(vmfrag_init);
module_exit(vmfrag_exit);
