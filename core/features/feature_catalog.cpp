#include "features/feature_catalog.hpp"

namespace bot4::features {
namespace {
constexpr FeatureInfo kCatalog[] = {
#define BOT4_FEATURE_ENTRY(name, family, unit, window, definition) \
  {#name, family, unit, window, definition},
    BOT4_FEATURE_LIST(BOT4_FEATURE_ENTRY)
#undef BOT4_FEATURE_ENTRY
};
static_assert(sizeof(kCatalog) / sizeof(kCatalog[0]) == kFeatureCount);
}  // namespace

const FeatureInfo& feature_info(int id) { return kCatalog[id]; }

}  // namespace bot4::features
