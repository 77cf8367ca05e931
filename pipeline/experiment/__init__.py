"""Online experiments: champion/challenger traffic split, attribution and automatic decisions."""
