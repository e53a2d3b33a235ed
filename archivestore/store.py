"""placeholder"""
class Store: pass
