#pragma once
// FeatureConfig from a Python dict (the keys of bot4.features.FeatureConfig.to_core()); an
// unknown key or an invalid value raises ValueError naming it. Shared by the features and engine
// bindings so both read a feature config the same way.
#include <pybind11/pybind11.h>

#include "features/feature_config.hpp"

namespace bot4::ext {

features::FeatureConfig feature_config_from_dict(const pybind11::dict& d);

}  // namespace bot4::ext
