"""Helpers shared by the comparison scripts (gemm_ratio.py, compare_pytorch.py); python3 stdlib only."""
AVX512_FLAGS = {"avx512f", "avx512bw", "avx512dq", "avx512vl"}


def cpu_has_avx512():
    """True when /proc/cpuinfo lists AVX-512 F, BW, DQ and VL (what OpenBLAS's SkylakeX kernels and torch's
    avx512 capability need)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return AVX512_FLAGS <= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return False


def print_table(hdr, rows, markdown):
    """Rows of strings under hdr: a Markdown table, or right-aligned columns."""
    if markdown:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "|".join("---" for _ in hdr) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
        for r in [hdr] + rows:
            print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
