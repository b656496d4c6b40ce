"""Word lists the synthetic world is built from (names, places, products, project codenames)."""

from __future__ import annotations

FIRST_NAMES = (
    "Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ines", "Jonas",
    "Kavya", "Luca", "Mara", "Nikolai", "Olga", "Pavel", "Quentin", "Rosa", "Sven", "Tarek",
    "Uma", "Viktor", "Wen", "Xenia", "Yusuf", "Zora", "Amir", "Beatriz", "Cyril", "Dalia",
    "Emeka", "Freya", "Gideon", "Hugo", "Ilse", "Jorge", "Keiko", "Leila", "Milan", "Noor",
)
LAST_NAMES = (
    "Quist", "Abara", "Berg", "Castillo", "Dubois", "Eriksen", "Fontaine", "Garza", "Haddad", "Ito",
    "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Rahman", "Sato", "Tanaka",
    "Ueda", "Vargas", "Weber", "Yilmaz", "Zeller", "Alvarez", "Brandt", "Chen", "Dalton", "Engel",
    "Ferreira", "Gallo", "Horvat", "Iqbal", "Keller", "Lambert", "Marsh", "Novak", "Ortega", "Pruitt",
)
CITIES = (
    "Leeds", "Porto", "Gdansk", "Lyon", "Tampere", "Bilbao", "Brno", "Graz", "Utrecht", "Aarhus",
    "Bergen", "Cork", "Dresden", "Genoa", "Kaunas", "Lille", "Malmo", "Nantes", "Ostrava", "Pecs",
    "Riga", "Seville", "Turin", "Varna", "Zadar", "Bremen", "Cluj", "Debrecen", "Espoo", "Faro",
    "Ghent", "Hull", "Innsbruck", "Kosice", "Linz", "Murcia", "Odense", "Plovdiv", "Split", "Tartu",
)
ADJECTIVES = (
    "Blue", "Compact", "Heavy", "Silent", "Rapid", "Modular", "Folding", "Coated", "Smart", "Rugged",
    "Mini", "Dual", "Thermal", "Portable", "Steel", "Matte", "Hybrid", "Precision", "Classic", "Wireless",
)
NOUNS = (
    "Widget", "Bracket", "Valve", "Sensor", "Hinge", "Pump", "Clamp", "Router", "Lantern", "Drill",
    "Gasket", "Spindle", "Relay", "Nozzle", "Caster", "Filter", "Kettle", "Ladder", "Coupler", "Meter",
)
DEPARTMENTS = (
    "Finance", "Logistics", "Research", "Legal", "Marketing", "Support", "Security", "Procurement",
    "Design", "Operations", "Training", "Quality", "Facilities", "Sales", "Platform",
)
CODENAMES = (
    "Larkspur", "Juniper", "Saffron", "Hemlock", "Marigold", "Thistle", "Bramble", "Willow", "Aster", "Clover",
    "Foxglove", "Heather", "Ivy", "Laurel", "Mistletoe", "Nettle", "Oleander", "Primrose", "Rowan", "Sorrel",
    "Tansy", "Verbena", "Yarrow", "Zinnia", "Alder", "Birch", "Cedar", "Dogwood", "Elder", "Fennel",
)
FILLER_SENTENCES = (
    "Reviewers noted delays in procurement during the second quarter.",
    "The steering group met monthly to track milestones.",
    "An external audit found no material issues.",
    "Staffing levels changed twice over the course of the work.",
    "Most of the equipment was leased rather than bought.",
    "Field notes from this period are archived separately.",
    "Weather disrupted the schedule for several weeks.",
    "The final report was circulated to all regional offices.",
    "Several contractors were replaced after the first review.",
    "Safety inspections were carried out every quarter.",
)
