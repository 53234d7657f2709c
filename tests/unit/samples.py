"""Events the unit tests start from."""

# a valid event in the canonical form: tests derive bad ones from it
GOOD = {
    "event_id": "e1",
    "customer_id": "C1",
    "timestamp": "2024-03-01T10:00:00Z",
    "amount": 12.5,
    "currency": "EUR",
    "category": "books",
    "income": 3000,
}
