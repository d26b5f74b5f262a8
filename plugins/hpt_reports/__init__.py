"""Built-in plugin: what a user does with a store of studies (list, compare, explain, browse, predict)."""
