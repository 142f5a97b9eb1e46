// libFuzzer target: the study size parser ballast::study::parse_size ("d<d_model>_L<layers>_H<heads>").
// Accepted labels must be canonical: exactly "d", digits, "_L", digits, "_H", digits (no sign, blanks,
// leading zeros, or trailing text), d_model and heads positive, layers >= 0 (0 layers: the bigram baseline),
// each representable, and the label must round-trip through model_size::label().

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <ballast/study/study.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string s(reinterpret_cast<const char*>(data), size);
    try
    {
        const auto m = ballast::study::parse_size(s);
        if (m.d_model == 0 || m.n_heads == 0 || m.label() != s)
        {
            std::abort(); // accepted a non-canonical or wrapped size
        }
    }
    catch (const ballast::error&)
    {
    }
    return 0;
}
