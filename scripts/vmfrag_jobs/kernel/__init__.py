"""Replays traces on a real Linux kernel and compares with vmfrag: one module per job.

    packages      Debian's kernel packages: resolved with apt-cache, fetched with apt-get download
                  into results/kernel-cache/, unpacked with dpkg-deb (nothing installed on the host)
    module_build  the replay module (kernel/) built against those headers
    trace         the trace as the module replays it, and its binary input (`encode_ops`)
    guest         the initramfs and the boot under qemu-system-x86_64 -accel tcg
    console       the module's lines read back from the guest's console, refusing anything incomplete
    window        the window rebuilt from the kernel's answers: replay JSON like `vmfrag replay`'s
    comparison    vmfrag's replay against the kernel's, op by op: the first difference and its kind
    confirmation  a kernel made ready once per series; confirm_findings and its vmfrag-confirmation records
    commands      `kernel-replay` and `confirm`
    errors        KernelError (the kernel side could not run: exit 1), TraceError (exit 2)

kernel/README.md describes the whole; scripts/vmfrag_jobs/kernel_job.py is the entry point the CLI
and the ci/nightly jobs import.
"""
