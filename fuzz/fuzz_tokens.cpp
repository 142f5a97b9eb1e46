// libFuzzer target: telling token files from text and validating token-file headers
// (ballast/train/tokens.hpp). A binary input (a NUL in its first 1024 bytes) is either refused with
// ballast::error or holds exactly the declared tokens; text is tokenised byte for byte.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>

#include <ballast/train/tokens.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    try
    {
        const auto tokens = ballast::tokens_of_bytes(bytes, "fuzz");
        if (!ballast::looks_binary(bytes))
        {
            if (tokens.size() != size)
            {
                std::abort();
            }
            for (std::size_t i = 0; i < size; ++i)
            {
                if (tokens[i] != data[i])
                {
                    std::abort();
                }
            }
        }
        else if (size != ballast::token_file_header_bytes + 2 * tokens.size() ||
                 (!tokens.empty() && std::memcmp(tokens.data(), data + 1024, 2 * tokens.size()) != 0))
        {
            std::abort();
        }
    }
    catch (const ballast::error&)
    {
        if (!ballast::looks_binary(bytes))
        {
            std::abort(); // text is never refused
        }
    }
    return 0;
}
