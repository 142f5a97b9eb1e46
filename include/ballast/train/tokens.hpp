#ifndef BALLAST_TRAIN_TOKENS_HPP
#define BALLAST_TRAIN_TOKENS_HPP

/// @file
/// Token data: byte-level tokenisation of UTF-8 text (vocab 256) and memory-mapped token files.
///
/// Token file format (compatible with llm.c's `.bin` shards): a header of 256 little-endian int32
/// (1024 bytes) — [0] magic 20240520, [1] version 1, [2] number of tokens n, the rest 0 — followed by
/// n little-endian uint16 token ids. A file whose size does not match the header is refused.
///
/// Telling token files from text (`load_tokens`): a file whose first 1024 bytes hold a NUL byte is binary,
/// and a binary file is only ever read as a token file. So a token file with a slightly wrong header (a
/// damaged magic, another version, non-zero reserved words, a byte-swapped header) is refused with the
/// reason instead of being tokenised as text and trained on; UTF-8 text never contains NUL.

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <span>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <ballast/core/config.hpp>
#include <ballast/core/file.hpp>

namespace ballast
{
    inline constexpr std::int32_t token_file_magic = 20240520;
    inline constexpr std::int32_t token_file_version = 1;
    inline constexpr std::size_t token_file_header_bytes = 256 * sizeof(std::int32_t);

    /// Byte-level tokenisation: every byte of the text is one token in [0, 256).
    inline std::vector<std::uint16_t> bytes_to_tokens(std::span<const std::byte> text)
    {
        std::vector<std::uint16_t> t(text.size());
        for (std::size_t i = 0; i < text.size(); ++i)
        {
            t[i] = static_cast<std::uint16_t>(std::to_integer<unsigned>(text[i]));
        }
        return t;
    }

    /// Validate a token-file header: `head` is the first bytes of the file (at least the 1024-byte header
    /// when the file is that long) and `file_size` its full size. Returns the token count; throws
    /// ballast::error naming `origin` and what is wrong.
    inline std::size_t check_token_file_header(std::span<const std::byte> head, std::size_t file_size,
                                               const std::string& origin)
    {
        BALLAST_CHECK(file_size >= token_file_header_bytes && head.size() >= token_file_header_bytes,
                      "token_file", "'", origin, "' is ", file_size,
                      " bytes, shorter than the 1024-byte header (truncated or not a token file)");
        std::int32_t header[256];
        std::memcpy(header, head.data(), sizeof(header));
        BALLAST_CHECK(header[0] !=
                        static_cast<std::int32_t>(__builtin_bswap32(std::uint32_t(token_file_magic))),
                      "token_file", "'", origin, "' has a byte-swapped magic (a big-endian token file?)");
        BALLAST_CHECK(header[0] == token_file_magic, "token_file", "'", origin, "' has magic ", header[0],
                      ", expected ", token_file_magic, " (not a token file, or a damaged header)");
        BALLAST_CHECK(header[1] == token_file_version, "token_file", "'", origin, "' has version ", header[1],
                      ", expected ", token_file_version);
        BALLAST_CHECK(header[2] >= 0, "token_file", "'", origin, "' declares a negative token count");
        for (std::size_t i = 3; i < 256; ++i)
        {
            BALLAST_CHECK(header[i] == 0, "token_file", "'", origin, "' has a non-zero reserved header word ",
                          i, " (damaged header)");
        }
        const auto count = static_cast<std::size_t>(header[2]);
        const std::size_t want = token_file_header_bytes + 2 * count;
        BALLAST_CHECK(file_size == want, "token_file", "'", origin, "' is ", file_size,
                      " bytes but its header declares ", count, " tokens (", want,
                      " bytes): truncated or corrupt");
        return count;
    }

    /// Whether `head` (a file's first bytes) looks binary: a NUL byte in its first 1024 bytes.
    inline bool looks_binary(std::span<const std::byte> head) noexcept
    {
        const auto n = std::min(head.size(), token_file_header_bytes);
        return std::find(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(n), std::byte{ 0 }) !=
               head.begin() + static_cast<std::ptrdiff_t>(n);
    }

    /// Tokens of a file's bytes: a token file when binary (see the file comment; refused unless its
    /// header is valid), else UTF-8 text tokenised byte-level. `origin` names the file in errors.
    inline std::vector<std::uint16_t> tokens_of_bytes(std::span<const std::byte> bytes,
                                                      const std::string& origin)
    {
        if (!looks_binary(bytes))
        {
            return bytes_to_tokens(bytes);
        }
        const std::size_t n = check_token_file_header(bytes, bytes.size(), origin);
        std::vector<std::uint16_t> t(n);
        if (n > 0)
        {
            std::memcpy(t.data(), bytes.data() + token_file_header_bytes, 2 * n);
        }
        return t;
    }

    /// Write tokens in the token-file format, atomically.
    inline void write_token_file(const std::filesystem::path& path, std::span<const std::uint16_t> tokens)
    {
        std::int32_t header[256] = {};
        header[0] = token_file_magic;
        header[1] = token_file_version;
        BALLAST_CHECK(tokens.size() <= 0x7fffffffu, "write_token_file",
                      "too many tokens for the format: ", tokens.size());
        header[2] = static_cast<std::int32_t>(tokens.size());
        const std::span<const std::byte> parts[] = { std::as_bytes(std::span(header)),
                                                     std::as_bytes(tokens) };
        write_file_atomic(path, std::span<const std::span<const std::byte>>(parts));
    }

    /// A read-only, memory-mapped token file (validated on open).
    class token_file
    {
    public:
        explicit token_file(const std::filesystem::path& path)
          : m_path(path.string())
        {
            const int fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
            BALLAST_CHECK(fd >= 0, "token_file", "cannot open '", m_path, "': ", std::strerror(errno));
            struct stat st
            {
            };
            const bool ok = ::fstat(fd, &st) == 0;
            m_size = ok ? static_cast<std::size_t>(st.st_size) : 0;
            if (ok && m_size > 0)
            {
                void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE, fd, 0);
                m_map = p == MAP_FAILED ? nullptr : p;
            }
            ::close(fd);
            BALLAST_CHECK(ok, "token_file", "cannot stat '", m_path, "'");
            try
            {
                validate();
            }
            catch (...)
            {
                unmap();
                throw;
            }
        }
        ~token_file() { unmap(); }
        token_file(const token_file&) = delete;
        token_file& operator=(const token_file&) = delete;
        token_file(token_file&& o) noexcept
          : m_path(std::move(o.m_path))
          , m_map(o.m_map)
          , m_size(o.m_size)
          , m_count(o.m_count)
        {
            o.m_map = nullptr;
        }

        /// The token ids (valid while this object lives).
        std::span<const std::uint16_t> tokens() const noexcept
        {
            return { reinterpret_cast<const std::uint16_t*>(static_cast<const std::byte*>(m_map) +
                                                            token_file_header_bytes),
                     m_count };
        }
        std::size_t size() const noexcept { return m_count; }
        const std::string& path() const noexcept { return m_path; }

    private:
        void validate()
        {
            BALLAST_CHECK(m_size < token_file_header_bytes || m_map != nullptr, "token_file", "cannot map '",
                          m_path, "'");
            const std::span<const std::byte> head(static_cast<const std::byte*>(m_map),
                                                  m_map != nullptr ? m_size : 0);
            m_count = check_token_file_header(head, m_size, m_path);
        }
        void unmap() noexcept
        {
            if (m_map != nullptr)
            {
                ::munmap(m_map, m_size);
                m_map = nullptr;
            }
        }

        std::string m_path;
        void* m_map = nullptr;
        std::size_t m_size = 0;
        std::size_t m_count = 0;
    };

    /// Tokens of a file: a token file or UTF-8 text, told apart as `tokens_of_bytes` does.
    inline std::vector<std::uint16_t> load_tokens(const std::filesystem::path& path)
    {
        return tokens_of_bytes(read_file(path), path.string());
    }
} // namespace ballast

#endif
