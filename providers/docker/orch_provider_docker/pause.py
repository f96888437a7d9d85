"""orch's pause image: what a pod's infra container runs, needing nothing from any app image.

The infra container only holds the pod's namespaces, so it must run something that waits forever and stops
at once when asked. Using the first app image's ``sleep`` fails for images without one (a single static
binary, distroless, scratch), and Docker's init (tini) cannot wait without a child. So orch brings its own
program: a static Linux executable of a few dozen instructions that makes SIGTERM and SIGINT exit 0 (as PID 1
of its namespace it must handle them itself: the kernel ignores default actions there) and otherwise waits in
``pause()`` (x86-64) or ``ppoll()`` (arm64, which has no ``pause``) forever. It is written here as machine code
wrapped in a minimal ELF header, from the assembly below, so orch needs no compiler and no download.

The provider makes the image on each node the first time a pod is created there (``docker import`` of an
in-memory tar holding ``/pause``, ``ENTRYPOINT ["/pause"]``; never pulled) and reuses it afterwards: its tag
is the program's hash, so a node keeps one image per version of the program.

x86-64 (``as --64``)::

    _start: lea handler(%rip), %rax
            push $0; push %rax; push $0x04000000; push %rax  # sigaction: handler, SA_RESTORER, restorer, mask
            mov %rsp, %rsi
            mov $15, %edi; call act                          # SIGTERM
            mov $2, %edi; call act                           # SIGINT
    wait:   mov $34, %eax; syscall; jmp wait                 # pause()
    act:    mov $13, %eax; xor %edx, %edx; mov $8, %r10d; syscall; ret   # rt_sigaction(sig, act, NULL, 8)
    handler: mov $231, %eax; xor %edi, %edi; syscall         # exit_group(0)

arm64 (``aarch64-linux-gnu-as``)::

    _start: adr x9, handler
            stp x9, xzr, [sp, #-32]!; stp xzr, xzr, [sp, #16]  # sigaction: handler, flags 0, restorer, mask
            mov x0, #15; bl act                                # SIGTERM
            mov x0, #2; bl act                                 # SIGINT
    wait:   mov x0, xzr; mov x1, xzr; mov x2, xzr; mov x3, xzr; mov x4, xzr
            mov x8, #73; svc #0; b wait                        # ppoll(NULL, 0, NULL, NULL, 0)
    act:    mov x1, sp; mov x2, xzr; mov x3, #8; mov x8, #134; svc #0; ret   # rt_sigaction
    handler: mov x0, xzr; mov x8, #94; svc #0                  # exit_group(0)
"""

from __future__ import annotations

import hashlib
import io
import struct
import tarfile

# machine code of the program above, per Docker's name of the architecture (``docker info``: Architecture)
CODE = {
    "x86_64": bytes.fromhex(
        "488d05390000006a00506800000004504889e6bf0f000000e813000000bf02000000e809000000b8220000000f05ebf7"
        "b80d00000031d241ba080000000f05c3b8e700000031ff0f05"),
    "aarch64": bytes.fromhex(
        "a9020010e97fbea9ff7f01a9e00180d20b000094400080d209000094e0031faae1031faae2031faae3031faae4031faa"
        "280980d2010000d4f9ffff17e1030091e2031faa030180d2c81080d2010000d4c0035fd6e0031faac80b80d2010000d4"),
}
ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
_MACHINE = {"x86_64": 62, "aarch64": 183}  # ELF e_machine
_BASE = 0x400000
_HEADERS = 64 + 56  # ELF header + one program header

REPOSITORY = "orch/pause"
ENTRYPOINT = ["/pause"]


def architecture(name: str | None) -> str | None:
    """The architecture orch has a pause program for, from Docker's name for it; None if it has none."""
    arch = ALIASES.get(name or "", name or "")
    return arch if arch in CODE else None


def program(arch: str) -> bytes:
    """The pause program as a static ELF executable: one loadable segment holding the headers and the code."""
    code = CODE[arch]
    size = _HEADERS + len(code)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, System V
    header = ident + struct.pack("<HHIQQQIHHHHHH", 2, _MACHINE[arch], 1, _BASE + _HEADERS, 64, 0, 0, 64, 56, 1,
                                 0, 0, 0)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x10000)  # PT_LOAD, R+X
    return header + segment + code


def image_ref(arch: str) -> str:
    """``orch/pause:<arch>-<hash>``: a new program gets a new tag, a node keeps the image of each version."""
    return f"{REPOSITORY}:{arch}-{hashlib.sha256(program(arch)).hexdigest()[:12]}"


def image_tar(arch: str) -> bytes:
    """The image's root filesystem, for ``docker import``: just ``/pause``."""
    data = program(arch)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


__all__ = ["CODE", "ENTRYPOINT", "REPOSITORY", "architecture", "image_ref", "image_tar", "program"]
