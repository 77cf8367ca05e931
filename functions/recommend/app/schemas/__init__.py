"""The API's request and response models: the one place that defines the JSON shapes.

``common``: limits, text types and the error shape; ``recommend``: ``POST /recommend``; ``events``:
``POST /events``; ``catalogue``: health and the read views (items, categories, users, the map, the experiment).
"""
