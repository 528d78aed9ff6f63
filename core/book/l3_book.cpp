#include "book/l3_book.hpp"

#include "book/batch_apply.hpp"

#include <algorithm>
#include <bit>

namespace bot4::book {

namespace detail {

U64Index::U64Index(size_t expected) {
  size_t cap = 16;
  while (cap * 5 < expected * 8) cap <<= 1;
  slots_.assign(cap, Slot{0, kNone});
  mask_ = cap - 1;
  shift_ = 64 - static_cast<unsigned>(std::countr_zero(cap));
}

bool U64Index::erase(uint64_t key) {
  size_t i = home(key);
  while (true) {
    if (slots_[i].value == kNone) return false;
    if (slots_[i].key == key) break;
    i = (i + 1) & mask_;
  }
  // Backward-shift deletion: pull later members of the probe run into the hole when their home
  // slot is not cyclically inside (hole, position].
  size_t j = i;
  while (true) {
    j = (j + 1) & mask_;
    if (slots_[j].value == kNone) break;
    const size_t k = home(slots_[j].key);
    if (((j - k) & mask_) >= ((j - i) & mask_)) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i].value = kNone;
  --size_;
  return true;
}

void U64Index::clear() {
  for (auto& s : slots_) s.value = kNone;
  size_ = 0;
}

void U64Index::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  const size_t cap = old.size() * 2;
  slots_.assign(cap, Slot{0, kNone});
  mask_ = cap - 1;
  shift_ = 64 - static_cast<unsigned>(std::countr_zero(cap));
  for (const Slot& s : old) {
    if (s.value == kNone) continue;
    size_t i = home(s.key);
    while (slots_[i].value != kNone) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

}  // namespace detail

namespace {
L2BookConfig owned_l2_config(const L3BookConfig& c) {
  // The L3 book keeps crossed books as the venue sent them; the L2 view must not prune them.
  return L2BookConfig{c.window_ticks, false, c.allow_nonpositive_prices};
}
}  // namespace

L3Book::L3Book(L3BookConfig config)
    : config_(config),
      l2_(owned_l2_config(config)),
      orders_(config.expected_orders),
      level_index_{detail::U64Index(1024), detail::U64Index(1024)} {
  nodes_.reserve(config.expected_orders);
  levels_.reserve(2048);
}

BookStatus L3Book::apply(const OrderEvent& ev) {
  ++counters_.events;
  BookStatus status = apply_checked(ev);
  counters_.count(status);
  if (ev.flags & event_flag::kLast) {
    ++counters_.messages;
    if (config_.check_crossed && !is_rejection(status) && l2_.crossed()) [[unlikely]] {
      counters_.count(BookStatus::Crossed);
      status = BookStatus::Crossed;
    }
  }
  return status;
}

BookStatus L3Book::apply_checked(const OrderEvent& ev) {
  const bool snapshot = (ev.flags & event_flag::kSnapshot) != 0;
  // A clear flag starts a new sequence (as in L2Book); snapshot records are not ordered.
  if (ev.seq < last_seq_ && !(ev.flags & (event_flag::kSnapshot | event_flag::kClear))) [[unlikely]]
    return BookStatus::SeqRegression;
  BookStatus status;
  switch (static_cast<OrderAction>(ev.action)) {
    case OrderAction::Add:
      status = add(ev);
      break;
    case OrderAction::Modify:
      if (ev.flags & event_flag::kClear) [[unlikely]] return BookStatus::UnknownOrder;
      status = modify(ev);
      break;
    case OrderAction::Cancel:
    case OrderAction::Execute:
      if (ev.flags & event_flag::kClear) [[unlikely]] return BookStatus::UnknownOrder;
      status = reduce(ev);
      break;
    case OrderAction::Clear:
      clear();
      status = BookStatus::Ok;
      break;
    default:
      return BookStatus::BadAction;
  }
  if (!is_rejection(status) && !snapshot) last_seq_ = ev.seq;
  return status;
}

BookStatus L3Book::add(const OrderEvent& ev) {
  if (ev.side > static_cast<uint8_t>(Side::Ask)) [[unlikely]] return BookStatus::BadSide;
  if (ev.qty <= 0) [[unlikely]] return BookStatus::NegativeQty;
  if (!price_ok(ev.price)) [[unlikely]] return BookStatus::BadPrice;
  if (ev.flags & event_flag::kClear) [[unlikely]] {
    clear();
  } else if (orders_.find(ev.order_id) != detail::U64Index::kNone) [[unlikely]] {
    return BookStatus::DuplicateOrder;
  }
  const uint32_t node = new_node();
  nodes_[node].id = ev.order_id;
  nodes_[node].qty = ev.qty;
  orders_.insert(ev.order_id, node);
  const uint32_t level = level_for(ev.side, ev.price);
  append(node, level);
  publish(levels_[level]);
  return BookStatus::Ok;
}

BookStatus L3Book::modify(const OrderEvent& ev) {
  const uint32_t node = orders_.find(ev.order_id);
  if (node == detail::U64Index::kNone) [[unlikely]] return BookStatus::UnknownOrder;
  if (ev.qty < 0) [[unlikely]] return BookStatus::NegativeQty;
  Node& n = nodes_[node];
  const uint8_t side = levels_[n.level].side;
  if (ev.side != side && ev.side != static_cast<uint8_t>(Side::None)) [[unlikely]]
    return BookStatus::BadSide;
  if (ev.qty == 0) {
    remove_order(node);
    return BookStatus::Ok;
  }
  if (!price_ok(ev.price)) [[unlikely]] return BookStatus::BadPrice;
  const int64_t old_price = levels_[n.level].price;
  if (ev.price == old_price && ev.qty <= n.qty) {
    // Size down (or unchanged): keeps its place in the queue.
    Level& lv = levels_[n.level];
    lv.total -= n.qty - ev.qty;
    n.qty = ev.qty;
    publish(lv);
    return BookStatus::Ok;
  }
  // Price change or size up: loses priority.
  unlink(node);
  nodes_[node].qty = ev.qty;
  const uint32_t level = level_for(side, ev.price);
  append(node, level);
  publish(levels_[level]);
  return BookStatus::Ok;
}

BookStatus L3Book::reduce(const OrderEvent& ev) {
  const uint32_t node = orders_.find(ev.order_id);
  if (node == detail::U64Index::kNone) [[unlikely]] return BookStatus::UnknownOrder;
  if (ev.qty < 0) [[unlikely]] return BookStatus::NegativeQty;
  Node& n = nodes_[node];
  if (ev.qty >= n.qty) {
    remove_order(node);
  } else if (ev.qty > 0) {
    Level& lv = levels_[n.level];
    n.qty -= ev.qty;
    lv.total -= ev.qty;
    publish(lv);
  }
  return BookStatus::Ok;
}

uint32_t L3Book::level_for(uint8_t side, int64_t price) {
  detail::U64Index& index = level_index_[side];
  const uint32_t found = index.find(static_cast<uint64_t>(price));
  if (found != detail::U64Index::kNone) return found;
  uint32_t level;
  if (free_level_ != kNil) {
    level = free_level_;
    free_level_ = levels_[level].head;
  } else {
    level = static_cast<uint32_t>(levels_.size());
    levels_.emplace_back();
  }
  levels_[level] = Level{price, 0, kNil, kNil, 0, side};
  index.insert(static_cast<uint64_t>(price), level);
  return level;
}

void L3Book::append(uint32_t node, uint32_t level) {
  Level& lv = levels_[level];
  Node& n = nodes_[node];
  n.level = level;
  n.next = kNil;
  n.prev = lv.tail;
  if (lv.tail != kNil) {
    nodes_[lv.tail].next = node;
  } else {
    lv.head = node;
  }
  lv.tail = node;
  ++lv.count;
  lv.total += n.qty;
}

void L3Book::unlink(uint32_t node) {
  Node& n = nodes_[node];
  const uint32_t level = n.level;
  Level& lv = levels_[level];
  if (n.prev != kNil) {
    nodes_[n.prev].next = n.next;
  } else {
    lv.head = n.next;
  }
  if (n.next != kNil) {
    nodes_[n.next].prev = n.prev;
  } else {
    lv.tail = n.prev;
  }
  --lv.count;
  lv.total -= n.qty;
  publish(lv);
  if (lv.count == 0) {
    level_index_[lv.side].erase(static_cast<uint64_t>(lv.price));
    lv.head = free_level_;  // free-list link
    free_level_ = level;
  }
}

void L3Book::remove_order(uint32_t node) {
  unlink(node);
  orders_.erase(nodes_[node].id);
  nodes_[node].next = free_node_;
  free_node_ = node;
}

uint32_t L3Book::new_node() {
  if (free_node_ != kNil) {
    const uint32_t node = free_node_;
    free_node_ = nodes_[node].next;
    return node;
  }
  nodes_.emplace_back();
  return static_cast<uint32_t>(nodes_.size() - 1);
}

void L3Book::apply_batch(const OrderEvent* events, size_t n, const int64_t* record_at,
                         size_t n_record, TopOfBook* tops) {
  apply_recording_tops(
      n, record_at, n_record, tops, [&](size_t i) { apply(events[i]); },
      [&](int64_t) { return top(); });
}

void L3Book::apply_batch_statuses(const OrderEvent* events, size_t n, uint8_t* statuses) {
  for (size_t i = 0; i < n; ++i) statuses[i] = static_cast<uint8_t>(apply(events[i]));
}

std::optional<RestingOrder> L3Book::order(OrderId id) const {
  const uint32_t node = orders_.find(id);
  if (node == detail::U64Index::kNone) return std::nullopt;
  const Node& n = nodes_[node];
  const Level& lv = levels_[n.level];
  return RestingOrder{n.id, lv.price, n.qty, static_cast<Side>(lv.side)};
}

int64_t L3Book::queue_ahead(OrderId id) const {
  const uint32_t node = orders_.find(id);
  if (node == detail::U64Index::kNone) return -1;
  int64_t ahead = 0;
  for (uint32_t k = levels_[nodes_[node].level].head; k != node; k = nodes_[k].next)
    ahead += nodes_[k].qty;
  return ahead;
}

std::vector<RestingOrder> L3Book::level_orders(Side side, int64_t price) const {
  std::vector<RestingOrder> out;
  if (side != Side::Bid && side != Side::Ask) return out;
  const uint32_t level = level_index_[static_cast<uint8_t>(side)].find(static_cast<uint64_t>(price));
  if (level == detail::U64Index::kNone) return out;
  out.reserve(levels_[level].count);
  for (uint32_t k = levels_[level].head; k != kNil; k = nodes_[k].next)
    out.push_back(RestingOrder{nodes_[k].id, price, nodes_[k].qty, side});
  return out;
}

size_t L3Book::level_order_count(Side side, int64_t price) const {
  if (side != Side::Bid && side != Side::Ask) return 0;
  const uint32_t level = level_index_[static_cast<uint8_t>(side)].find(static_cast<uint64_t>(price));
  return level == detail::U64Index::kNone ? 0 : levels_[level].count;
}

void L3Book::clear() {
  l2_.clear();
  nodes_.clear();
  levels_.clear();
  free_node_ = kNil;
  free_level_ = kNil;
  orders_.clear();
  level_index_[0].clear();
  level_index_[1].clear();
  last_seq_ = INT64_MIN;
}

}  // namespace bot4::book
